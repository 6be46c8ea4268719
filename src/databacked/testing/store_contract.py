"""``StoreContract``: what every store must do, as a pytest class to subclass.

A test module provides a ``store`` fixture (an empty ``Store``) and inherits every test::

    class TestLocal(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return Store(tmp_path / "data")
"""

from __future__ import annotations

import pickle

import pytest

from databacked.errors import ArtifactNotFound, PathEscapeError, StoreError
from databacked.hashing import combine, hash_bytes, hash_file
from databacked.store import STAGING_PREFIX, FileInfo, Store

PAYLOAD = bytes(range(256)) * 1000


class Boom(RuntimeError):
    """Raised inside a writer to check that a failed write leaves nothing behind."""


class StoreContract:
    """Every store must pass these; subclasses provide a ``store`` fixture."""

    def test_put_and_read_round_trip(self, store: Store) -> None:
        result = store.put_bytes("a/b/c.bin", PAYLOAD)
        assert result.path == "a/b/c.bin"
        assert result.size == len(PAYLOAD)
        assert result.hash == hash_bytes(PAYLOAD)
        assert store.read_bytes("a/b/c.bin") == PAYLOAD
        with store.open("a/b/c.bin") as f:
            assert f.read() == PAYLOAD
        assert store.exists("a/b/c.bin")
        assert not store.exists("a/b/missing.bin")

    def test_hash_while_writing_equals_hash_of_the_result(self, store: Store) -> None:
        with store.writer("w.bin") as out:
            for i in range(0, len(PAYLOAD), 7000):
                out.write(PAYLOAD[i : i + 7000])
        assert out.result is not None
        assert out.result.hash == store.hash("w.bin") == hash_file(store.uri("w.bin"), **_so(store))
        assert out.result.stamp == store.info("w.bin").stamp

    def test_put_file(self, store: Store, tmp_path: object) -> None:
        import pathlib

        src = pathlib.Path(str(tmp_path)) / "src.bin"
        src.write_bytes(PAYLOAD)
        result = store.put_file("copied.bin", src)
        assert result.hash == hash_file(src)
        assert store.read_bytes("copied.bin") == PAYLOAD

    def test_listing_with_stamps(self, store: Store) -> None:
        store.put_bytes("x/1.bin", b"one")
        store.put_bytes("x/y/2.bin", b"two!")
        store.put_bytes("z.bin", b"z")
        listed = {info.path: info for info in store.list()}
        assert set(listed) == {"x/1.bin", "x/y/2.bin", "z.bin"}
        assert listed["x/y/2.bin"].size == 4
        assert all(isinstance(i, FileInfo) and i.stamp for i in listed.values())
        assert {i.path for i in store.list("x")} == {"x/1.bin", "x/y/2.bin"}
        info = store.info("x/1.bin")
        assert (info.path, info.size, info.stamp) == ("x/1.bin", 3, listed["x/1.bin"].stamp)

    def test_infos_batched(self, store: Store) -> None:
        store.put_bytes("d/a.bin", b"a")
        store.put_bytes("d/b.bin", b"bb")
        store.put_bytes("e.bin", b"eee")
        found = store.infos(["d/a.bin", "d/b.bin", "d/none.bin", "e.bin", "nodir/x.bin"])
        assert found["d/none.bin"] is None and found["nodir/x.bin"] is None
        sizes = {k: v.size for k, v in found.items() if v is not None}
        assert sizes == {"d/a.bin": 1, "d/b.bin": 2, "e.bin": 3}
        assert found["e.bin"] is not None and found["e.bin"].stamp == store.info("e.bin").stamp

    def test_missing_file_is_artifact_not_found(self, store: Store) -> None:
        with pytest.raises(ArtifactNotFound, match=r"nope\.bin"):
            store.info("nope.bin")
        with pytest.raises(FileNotFoundError):
            store.read_bytes("nope.bin")

    def test_failed_write_leaves_nothing(self, store: Store) -> None:
        with pytest.raises(Boom), store.writer("fail/x.bin") as out:
            out.write(b"partial")
            raise Boom
        assert not store.exists("fail/x.bin")
        assert [i.path for i in store.list()] == []
        assert out.result is None

    def test_failed_overwrite_keeps_the_old_bytes(self, store: Store) -> None:
        store.put_bytes("keep.bin", b"old")
        with pytest.raises(Boom), store.writer("keep.bin") as out:
            out.write(b"new")
            raise Boom
        assert store.read_bytes("keep.bin") == b"old"
        assert [i.path for i in store.list()] == ["keep.bin"]

    def test_overwrite_replaces_content_and_stamp(self, store: Store) -> None:
        first = store.put_bytes("o.bin", b"first")
        second = store.put_bytes("o.bin", b"second version")
        assert store.read_bytes("o.bin") == b"second version"
        assert second.hash != first.hash
        assert store.info("o.bin").size == len(b"second version")

    @pytest.mark.parametrize(
        "bad", ["", "/etc/passwd", "../up.bin", "a/../../b", "a\0b", "a\\..\\b", "C:/x", "."]
    )
    def test_path_escape_refused(self, store: Store, bad: str) -> None:
        with pytest.raises(PathEscapeError) as info:
            store.put_bytes(bad, b"x")
        assert store.url in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_check_path_normalises(self, store: Store) -> None:
        assert store.check_path("a//b/./c.bin") == "a/b/c.bin"
        assert store.check_path("a/b/") == "a/b"

    def test_delete(self, store: Store) -> None:
        store.put_bytes("del/a.bin", b"a")
        store.delete("del/a.bin")
        assert not store.exists("del/a.bin")
        store.delete("del/a.bin")  # missing is fine
        store.delete("never/there")

    def test_directory_writer(self, store: Store) -> None:
        import fsspec

        with store.directory_writer("img.zarr") as out:
            fs, root = fsspec.core.url_to_fs(out.path, **(out.storage_options or {}))
            fs.makedirs(f"{root}/0", exist_ok=True)
            fs.pipe_file(f"{root}/zarr.json", b"{}")
            fs.pipe_file(f"{root}/0/c", b"chunk")
        assert out.result is not None
        assert out.result.hash == store.hash("img.zarr")
        # The same Merkle hash on every store: relative paths and plain file hashes.
        parts = (f"0/c\0{hash_bytes(b'chunk')}", f"zarr.json\0{hash_bytes(b'{}')}")
        assert out.result.hash == combine("dir", *parts)
        assert out.result.size == 2 + 5
        assert {i.path for i in store.list("img.zarr")} == {"img.zarr/zarr.json", "img.zarr/0/c"}
        assert not [i for i in store.list() if STAGING_PREFIX in i.path]
        # Overwrite: the new folder replaces the old one entirely.
        with store.directory_writer("img.zarr") as again:
            fs, root = fsspec.core.url_to_fs(again.path, **(again.storage_options or {}))
            fs.pipe_file(f"{root}/zarr.json", b"{ }")
        assert {i.path for i in store.list("img.zarr")} == {"img.zarr/zarr.json"}
        assert again.result is not None and again.result.hash != out.result.hash
        store.delete("img.zarr")
        assert not store.exists("img.zarr")

    def test_failed_directory_write_leaves_nothing(self, store: Store) -> None:
        import fsspec

        with pytest.raises(Boom), store.directory_writer("bad.zarr") as out:
            fs, root = fsspec.core.url_to_fs(out.path, **(out.storage_options or {}))
            fs.pipe_file(f"{root}/zarr.json", b"{}")
            raise Boom
        assert [i.path for i in store.list()] == []

    def test_open_is_read_only(self, store: Store) -> None:
        store.put_bytes("r.bin", b"r")
        with pytest.raises(StoreError, match="read-only"):
            store.open("r.bin", "wb")

    def test_pickles_and_keeps_credentials_out_of_repr(self, store: Store) -> None:
        clone = pickle.loads(pickle.dumps(store))  # noqa: S301 -- our own bytes
        assert clone == store
        store.put_bytes("p.bin", b"p")
        assert clone.read_bytes("p.bin") == b"p"
        for value in store.storage_options.values():
            if isinstance(value, str) and value:
                assert value not in repr(store) and value not in str(store)
        assert Store.from_url(store) is store


def _so(store: Store) -> dict[str, object]:
    return {"storage_options": store.storage_options} if store.storage_options else {}


__all__ = ["StoreContract"]
