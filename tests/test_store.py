"""Stores on a local folder, in memory and on S3 (moto server) pass the same contract."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from databacked.errors import ArtifactNotFound, StoreError
from databacked.hashing import hash_bytes, hash_file
from databacked.store import STAGING_PREFIX, Store, is_transient, retrying
from databacked.testing.store_contract import StoreContract


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return Store(tmp_path / "data")


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = Store(f"memory://contract-{uuid.uuid4().hex}")
        yield store
        root = store.full_path("x").rpartition("/")[0]
        if store.fs.exists(root):
            store.fs.rm(root, recursive=True)


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3_bucket: str) -> Store:
        return Store(f"{s3_bucket}/prefix/run")


# --- local only ---------------------------------------------------------------------------


def test_local_url_is_plain_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store("data")
    assert store.url == str(tmp_path / "data")
    assert store.is_local and store.protocol == "file"
    assert Store(f"file://{tmp_path}/data").url == store.url
    assert store.uri("a/b.tif") == str(tmp_path / "data" / "a" / "b.tif")
    assert store.local_path("a/b.tif") == tmp_path / "data" / "a" / "b.tif"


def test_writer_uses_a_staging_name_in_the_same_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer("sub/out.bin") as out:
        out.write(b"abc")
        staged = [p.name for p in (tmp_path / "sub").iterdir()]
        assert len(staged) == 1 and staged[0].startswith(STAGING_PREFIX)
        assert not (tmp_path / "sub" / "out.bin").exists()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.bin"]
    assert out.result is not None and out.result.hash == hash_bytes(b"abc")


@pytest.mark.parametrize("durability", ["batch", "fsync", "none"])
def test_durability_modes(tmp_path: Path, durability: str) -> None:
    store = Store(tmp_path, durability=durability)  # type: ignore[arg-type]
    store.put_bytes("a.bin", b"a")
    with store.directory_writer("d.zarr") as out:
        Path(out.path, "zarr.json").write_bytes(b"{}")
    expected = {str(tmp_path / "a.bin"), str(tmp_path / "d.zarr")}
    assert store.pending == (expected if durability == "batch" else frozenset())
    store.sync()
    assert store.pending == frozenset()
    assert (tmp_path / "a.bin").read_bytes() == b"a"


def test_a_batch_of_few_files_is_made_durable_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem sync also writes back every other program's pending data on that disk;
    a few files written are fsynced themselves, with each folder that holds them."""
    import databacked.store.core as core

    synced: list[str] = []
    whole: list[str] = []
    monkeypatch.setattr(core, "_fsync_path", lambda path: synced.append(path))
    monkeypatch.setattr(core, "_syncfs", lambda root: whole.append(root))
    store = Store(tmp_path / "s", durability="batch")
    store.put_bytes("a/b/one.txt", b"1")
    store.put_bytes("two.txt", b"2")
    store.sync(written=["a/b/one.txt", "two.txt"])
    root = str(tmp_path / "s")
    expected = {f"{root}/a/b/one.txt", f"{root}/two.txt", f"{root}/a/b", f"{root}/a", root}
    assert set(synced) == expected and whole == []

    synced.clear()
    store.put_bytes("image.zarr/zarr.json", b"{}")  # a folder artifact: its whole tree counts
    store.sync(written=["image.zarr"])
    many = [f"m/{i}.txt" for i in range(core.FEW_WRITTEN + 1)]
    for path in many:
        store.put_bytes(path, b"x")
    store.sync(written=many)
    store.sync()  # written files not known (another process's writes): the filesystem sync
    assert synced == [] and whole == [root, root, root]


def test_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="durability"):
        Store(tmp_path, durability="sometimes")  # type: ignore[arg-type]


def test_local_directory_writer_stages_then_renames(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.directory_writer("img.ome.zarr") as out:
        assert Path(out.path).parent == tmp_path
        assert Path(out.path).name.startswith(STAGING_PREFIX)
        assert out.storage_options is None
        Path(out.path, "zarr.json").write_bytes(b"{}")
        assert not (tmp_path / "img.ome.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.zarr"]


def test_directory_writer_gives_a_zarr_store(tmp_path: Path) -> None:
    import numpy as np
    import zarr

    store = Store(tmp_path)
    with store.directory_writer("a.zarr") as out:
        zarr.create_array(out.store, shape=(4,), dtype="i2")[:] = np.arange(4)
    assert out.result is not None and out.result.hash == store.hash("a.zarr")
    assert zarr.open_array(str(tmp_path / "a.zarr"))[:].tolist() == [0, 1, 2, 3]


def test_directory_info_changes_when_a_chunk_changes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.directory_writer("d.zarr") as out:
        Path(out.path, "sub").mkdir()
        Path(out.path, "sub", "c").write_bytes(b"1")
    before = store.info("d.zarr")
    os.utime(tmp_path / "d.zarr" / "sub" / "c", ns=(10**18, 10**18))
    assert store.info("d.zarr").stamp != before.stamp


def test_memory_store_url_and_uri() -> None:
    store = Store("memory://bucket/pre/")
    assert store.url == "memory://bucket/pre"
    assert store.uri("a/b.csv") == "memory://bucket/pre/a/b.csv"
    assert store.local_path("a/b.csv") is None and not store.is_local


def test_credentials_stay_out_of_messages() -> None:
    store = Store("memory://user:hunter2@bucket/x")
    assert "hunter2" not in store.url and "hunter2" not in repr(store)
    with pytest.raises(ArtifactNotFound) as info:
        store.read_bytes("missing.bin")
    assert "hunter2" not in str(info.value)


def test_s3_large_write_goes_up_multipart(s3_bucket: str) -> None:
    store = Store(s3_bucket, storage_options={"default_block_size": 5 * 2**20})
    data = os.urandom(40 * 2**20)  # above the in-memory spool limit: spilled, then multipart
    result = store.put_bytes("big.bin", data)
    assert result.hash == hash_bytes(data)
    assert store.info("big.bin").size == len(data)
    assert store.hash("big.bin") == result.hash


def test_s3_directory_writer_gives_a_zarr_store(s3_bucket: str) -> None:
    import numpy as np
    import zarr

    store = Store(f"{s3_bucket}/p")
    with store.directory_writer("a.zarr") as out:
        zarr.create_array(out.store, shape=(4,), dtype="i2")[:] = np.arange(4)
    assert out.result is not None and out.result.hash == store.hash("a.zarr")
    assert store.infos(["a.zarr"])["a.zarr"] == store.info("a.zarr")
    assert store.info("a.zarr").stamp.startswith("e:")
    back = zarr.open_array(zarr.storage.FsspecStore.from_url(store.uri("a.zarr"), read_only=True))
    assert back[:].tolist() == [0, 1, 2, 3]


def test_s3_store_reads_endpoint_from_environment(s3_bucket: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"]
    store = Store(s3_bucket)
    store.put_bytes("env.bin", b"x")
    assert store.info("env.bin").etag


# --- retries --------------------------------------------------------------------------------


def test_transient_errors_are_retried() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return "ok"

    assert retrying(flaky, max_wait=0.01) == "ok"
    assert len(calls) == 3


def test_missing_files_are_not_retried() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError):
        retrying(missing, max_wait=0.01)
    assert len(calls) == 1


def test_transient_classification() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    slow = ClientError({"Error": {"Code": "SlowDown"}}, "PutObject")
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "Get"
    )
    assert is_transient(slow)
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(TimeoutError())
    assert not is_transient(denied)
    assert not is_transient(PermissionError())
    try:
        raise OSError("wrapped") from slow
    except OSError as exc:
        assert is_transient(exc)


def test_unreachable_store_is_one_sentence_without_secrets() -> None:
    options = {
        "key": "AKIAEXAMPLEKEYID",
        "secret": "example-secret-value",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"},
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    store = Store("s3://nobucket/x", storage_options=options)
    with pytest.raises(StoreError) as info:
        store.put_bytes("a.bin", b"x")
    message = str(info.value)
    assert "s3://nobucket/x/a.bin" in message and "reachable" in message
    assert "example-secret-value" not in message and "AKIAEXAMPLEKEYID" not in message
    assert "example-secret-value" not in repr(store)


def test_seekable_writer_commits_atomically_and_hashes_the_final_bytes(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with store.seekable_writer("a/b.bin") as target:
        target.file.write(b"xxxx-tail")
        target.file.seek(0)
        target.file.write(b"head")  # patched in place, as tifffile does with IFD offsets
    assert (tmp_path / "a/b.bin").read_bytes() == b"head-tail"
    assert target.result is not None and target.result.hash == hash_file(tmp_path / "a/b.bin")
    with pytest.raises(RuntimeError), store.seekable_writer("a/c.bin") as target:
        target.file.write(b"partial")
        raise RuntimeError("the library failed half way")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]
