"""Preflight: a store without credentials or a bucket fails in one sentence before computing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import databacked as db
from databacked.errors import StoreError

STEPS = """
import databacked as db

LOG = {log!r}

@db.step(target="out/{{x}}.json")
def work(x: int) -> int:
    with open(LOG, "a") as f:
        f.write(f"computed {{x}}\\n")
    return x

@db.pipeline
def many(n: int):
    return work.map(x=list(range(n)))
"""


@pytest.fixture
def mod(write_module: Callable[[str, str], ModuleType], tmp_path: Path) -> ModuleType:
    return write_module("preflight", STEPS.format(log=str(tmp_path / "log.txt")))


INLINE = {"executor": "inline"}


def _computed(tmp_path: Path) -> list[str]:
    log = tmp_path / "log.txt"
    return log.read_text().splitlines() if log.exists() else []


def test_no_s3_credentials_is_one_sentence_before_anything_computes(
    mod: ModuleType,
    s3_bucket: str,
    catalog_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    try:
        with pytest.raises(StoreError, match=r"No S3 credentials for the store s3://.*ACCESS_KEY"):
            db.run(mod.many, 3, store=f"{s3_bucket}/p", catalog=catalog_db, executor="inline")
    finally:  # s3fs keeps filesystems per process: none made without keys may serve later tests
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
    assert _computed(tmp_path) == []


def test_a_missing_bucket_is_one_sentence_before_anything_computes(
    mod: ModuleType, s3_endpoint: str, catalog_db: str, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"does not accept writes .*bucket exists") as info:
        db.run(mod.many, 3, store="s3://no-such-bucket-dbk/p", catalog=catalog_db, **INLINE)
    assert "\n" not in str(info.value)
    assert _computed(tmp_path) == []


def test_a_working_store_is_probed_without_leaving_files(
    mod: ModuleType, store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    result = db.run(mod.many, 2, store=store_url, catalog=catalog_db, executor="inline")
    assert result.ok and _computed(tmp_path) == ["computed 0", "computed 1"]
    probes = Path(store_url) / ".databacked" / "preflight"
    assert not probes.exists() or not any(probes.iterdir())
