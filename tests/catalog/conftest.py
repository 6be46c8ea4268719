"""Catalog fixtures: one open Catalog per supported database, and call records to put in it.

The server databases are shared by every test of a session, so each test writes under its
own keys, step names and store URL (``Names``) rather than cleaning tables.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from databacked.catalog import CallRecord, Catalog, InputRef


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    try:
        yield cat
    finally:
        cat.close()


@dataclass(frozen=True)
class Out:
    """An ArtifactRecord-like output (the catalog must not need formats.base)."""

    path: str
    hash: str
    size: int
    format: str = "npy"
    stamp: str = "m:1:1"
    metadata: dict = field(default_factory=dict)


@dataclass
class Names:
    """Unique names for one test: keys, step, store URL."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def store(self) -> str:
        return f"/tmp/store-{self.tag}"

    @property
    def step(self) -> str:
        return f"step_{self.tag}"

    def key(self, i: int | str) -> str:
        return hashlib.sha256(f"{self.tag}/key/{i}".encode()).hexdigest()

    def digest(self, i: int | str) -> str:
        return hashlib.sha256(f"{self.tag}/bytes/{i}".encode()).hexdigest()

    def out(self, path: str, digest: str, size: int, **kw) -> Out:
        """An output record, as a write would return it."""
        return Out(path=path, hash=digest, size=size, **kw)

    def call(self, i: int, *, inputs: dict | None = None, run_id: str | None = None, **kw):
        """A completed call ``i`` with one output ``out/{i}.npy`` and one input edge."""
        out = Out(path=f"out/{i}.npy", hash=self.digest(i), size=100 + i)
        return CallRecord(
            key=self.key(i),
            step=kw.pop("step", self.step),
            fingerprint="fp",
            run_id=run_id,
            store=self.store,
            params={"i": i},
            inputs=inputs if inputs is not None else {"x": [InputRef(hash=self.digest(f"in{i}"))]},
            outputs={"out": out},
            started=1000.0,
            finished=1001.5,
            host="here",
            pid=1,
            **kw,
        )


@pytest.fixture
def names() -> Names:
    return Names()
