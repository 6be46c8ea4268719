"""``FormatContract``: what every format must do, as a pytest class to subclass.

A test module provides ``format`` (the Format under test), ``sample_value`` (a value it
writes), optionally ``refused_value`` (one it must refuse) and ``assert_equal``::

    class TestNpy(FormatContract):
        @pytest.fixture
        def format(self):
            return Npy()

        @pytest.fixture
        def sample_value(self):
            return np.arange(12).reshape(3, 4)

The store is a fresh local one in ``tmp_path`` unless the subclass overrides ``store``.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from databacked.errors import DatabackedError
from databacked.formats.base import ArtifactRecord, Format
from databacked.hashing import hash_file
from databacked.store import Store


class FormatContract:
    """Every format must pass these; subclasses provide ``format`` and ``sample_value``."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return Store(tmp_path / "store")

    @pytest.fixture
    def refused_value(self) -> Any:
        """A value the format must refuse (override when ``object()`` is acceptable)."""
        return object()

    @pytest.fixture
    def assert_equal(self) -> Any:
        def check(got: Any, expected: Any) -> None:
            import numpy as np

            if hasattr(expected, "equals"):  # pandas
                assert expected.equals(got)
            elif hasattr(expected, "shape"):
                np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
            else:
                assert got == expected

        return check

    def target(self, format: Format) -> str:
        return "sub/value" + (format.extensions[0] if format.extensions else "")

    def test_round_trip(
        self, format: Format, sample_value: Any, store: Store, assert_equal: Any
    ) -> None:
        path = self.target(format)
        record = format.write(sample_value, store, path)
        assert isinstance(record, ArtifactRecord)
        assert record.path == path
        assert record.format == format.name
        assert_equal(format.read(store, path), sample_value)

    def test_record_matches_the_bytes_written(
        self, format: Format, sample_value: Any, store: Store
    ) -> None:
        path = self.target(format)
        record = format.write(sample_value, store, path)
        assert record.hash == store.hash(path)
        local = store.local_path(path)
        if local is not None and local.is_file():
            assert record.hash == hash_file(local)
            assert record.size == local.stat().st_size
        assert record.size == store.info(path).size
        assert record.stamp == store.info(path).stamp

    def test_record_is_json_able_and_travels(
        self, format: Format, sample_value: Any, store: Store
    ) -> None:
        record = format.write(sample_value, store, self.target(format))
        data = json.loads(json.dumps(record.to_dict()))
        assert ArtifactRecord.from_dict(data) == record
        assert pickle.loads(pickle.dumps(record)) == record  # noqa: S301 - our own bytes

    def test_spec_round_trip(self, format: Format) -> None:
        spec = json.loads(json.dumps(format.spec()))
        assert spec["name"] == format.name
        again = type(format).from_spec(spec)
        assert again == format
        assert hash(again) == hash(format)
        assert pickle.loads(pickle.dumps(format)) == format  # noqa: S301 - our own bytes

    def test_refused_value_leaves_nothing(
        self, format: Format, refused_value: Any, store: Store
    ) -> None:
        path = self.target(format)
        assert not format.accepts(refused_value)
        with pytest.raises(DatabackedError):
            format.write(refused_value, store, path)
        assert not store.exists(path)
        assert list(store.list()) == []
        local = Path(store.url) if store.is_local else None
        if local is not None and local.exists():
            assert [p for _, _, files in os.walk(local) for p in files] == []

    def test_same_value_gives_the_same_bytes(
        self, format: Format, sample_value: Any, store: Store
    ) -> None:
        first = format.write(sample_value, store, "a/" + self.target(format))
        second = format.write(sample_value, store, "b/" + self.target(format))
        assert first.hash == second.hash
        assert first.size == second.size
        assert first.metadata == second.metadata


__all__ = ["FormatContract"]
