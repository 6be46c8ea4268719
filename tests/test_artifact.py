"""db.save / db.load and the Artifact handle on local, memory and S3 (moto) stores."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import databacked as db
from databacked.artifact import Artifact, File, split_url
from databacked.errors import (
    ArtifactNotFound,
    CorruptFileError,
    IntegrityError,
    UnknownFormatError,
)
from databacked.store import Store


@pytest.fixture(params=["local", "memory", "s3"])
def base_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "data")
    if request.param == "memory":
        return f"memory://dbk-{uuid.uuid4().hex[:8]}"
    return request.getfixturevalue("s3_bucket") + "/data"


def _stack() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 4000, size=(2, 3, 16, 20), dtype=np.uint16)


def test_save_and_load_an_ome_tiff(base_url: str) -> None:
    url = f"{base_url}/cells/7.ome.tiff"
    art = db.save(_stack(), url, format=db.OmeTiff(dims="CZYX", channel_names=["a", "b"]))
    assert isinstance(art, Artifact)
    assert art.uri.endswith("cells/7.ome.tiff")
    assert art.format == db.OmeTiff(dims="CZYX", channel_names=["a", "b"])
    assert art.metadata["channel_names"] == ["a", "b"]
    assert art.size == art.store.info(art.path).size
    assert art.hash == art.store.hash(art.path)
    np.testing.assert_array_equal(db.load(url), _stack())
    np.testing.assert_array_equal(db.load(art, lazy=True).compute(), _stack())
    np.testing.assert_array_equal(art.load(verify=True), _stack())


def test_save_and_load_table_and_json(base_url: str) -> None:
    frame = pd.DataFrame({"cell": [1, 2], "area": [3.5, 4.0]})
    art = db.save(frame, f"{base_url}/t/features.parquet")
    assert art.format.name == "parquet" and art.metadata["rows"] == 2
    assert db.load(f"{base_url}/t/features.parquet").equals(frame)
    db.save({"threshold": 0.5}, f"{base_url}/params.json")
    assert db.load(f"{base_url}/params.json") == {"threshold": 0.5}
    with art.open() as raw:
        assert raw.read(4) == b"PAR1"


def test_verify_detects_changed_bytes(base_url: str) -> None:
    art = db.save(np.arange(10), f"{base_url}/v.npy")
    art.store.put_bytes("v.npy", b"not the same bytes")
    with pytest.raises(CorruptFileError, match=r"v\.npy"):
        db.load(art)  # without verify, the parser is what notices
    with pytest.raises(IntegrityError, match=r"v\.npy.*expected hash") as info:
        db.load(art, verify=True)
    assert art.hash[:12] in str(info.value)


def test_missing_file_is_artifact_not_found(base_url: str) -> None:
    with pytest.raises(ArtifactNotFound) as info:
        db.load(f"{base_url}/nothing/here.npy")
    assert isinstance(info.value, FileNotFoundError)


def test_artifact_equality_pickle_and_repr(tmp_path: Path) -> None:
    art = db.save(np.arange(4), tmp_path / "a.npy")
    again = Artifact(Store(tmp_path), "a.npy")
    assert again == art and hash(again) == hash(art)
    assert Artifact(Store(tmp_path.parent), f"{tmp_path.name}/a.npy") == art
    copy = pickle.loads(pickle.dumps(art))
    assert copy == art and copy.format == art.format
    np.testing.assert_array_equal(copy.load(), np.arange(4))
    assert len(repr(art)) < 200 and "a.npy" in repr(art)
    db.save(np.arange(5), tmp_path / "a.npy")
    assert Artifact(Store(tmp_path), "a.npy") != art  # same path, new bytes


def test_split_url() -> None:
    store, name = split_url("s3://bucket/a/b.tif")
    assert (store.url, name) == ("s3://bucket/a", "b.tif")
    store, name = split_url("file:///tmp/x/y.npy")
    assert (store.url, name) == ("/tmp/x", "y.npy")
    store, name = split_url("memory://root/c.ome.zarr/")
    assert name == "c.ome.zarr" and store.protocol == "memory"


def test_pickle_needs_opt_in_to_load(tmp_path: Path) -> None:
    db.save({1, 2}, tmp_path / "s.pkl", format=db.Pickle())
    with pytest.raises(UnknownFormatError, match="opt in"):
        db.load(tmp_path / "s.pkl")
    assert db.load(tmp_path / "s.pkl", format=db.Pickle()) == {1, 2}


def test_file_marker_is_a_string() -> None:
    path: Any = File("in/fov.tif")
    assert isinstance(path, str) and path == "in/fov.tif"


def test_save_and_load_an_ome_zarr_directory(base_url: str) -> None:
    url = f"{base_url}/cells/7.ome.zarr"
    art = db.save(_stack(), url, format=db.OmeZarr(dims="CZYX", chunks=(1, 1, 8, 10)))
    assert art.format.directory and art.hash == art.store.hash(art.path)
    np.testing.assert_array_equal(db.load(url), _stack())
    np.testing.assert_array_equal(db.load(art, lazy=True, verify=True).compute(), _stack())


def test_load_an_artifact_with_another_format_and_from_a_record(tmp_path: Path) -> None:
    art = db.save({"a": [1, 2]}, tmp_path / "v.json")
    with pytest.raises(CorruptFileError, match=r"v\.json"):
        db.load(art, format=db.Npy())  # the same bytes read as .npy: refused, named
    raw = db.load(art, format="json")
    assert raw == {"a": [1, 2]}
    again = Artifact.from_record(art.store, art.to_record())
    assert again == art and again.metadata == art.metadata
    assert again.to_record().to_dict()["format"] == "json"
