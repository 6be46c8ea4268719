"""Golden and property tests for content and value hashing (hashes are a file format)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from databacked.errors import ArtifactNotFound, UnhashableValueError
from databacked.hashing import (
    SCHEME,
    StreamHasher,
    combine,
    hash_bytes,
    hash_file,
    hash_value,
)

# Official BLAKE3 digests of these byte strings (b3sum prints the same).
FILE_GOLDEN = {
    b"": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    b"abc": "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    # 1,049,600 bytes: above the threshold where files are memory-mapped and multithreaded.
    bytes(range(256)) * 4100: "07db2ec083682e895c07b0eb317b7a2b31210f1a528fc5091c23047a8c244812",
}

VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "int1": 1,
    "str1": "1",
    "float1": 1.0,
    "bytes": b"1",
    "list": [1, "a", None],
    "tuple": (1, "a", None),
    "dict": {"b": 2, "a": [1.5, "x"]},
    "set": {3, 1, 2},
    "path": pathlib.PurePosixPath("raw/a.tif"),
    "date": dt.date(2024, 1, 2),
    "uuid": uuid.UUID(int=1),
    "arr_i8": np.arange(6, dtype="<i8").reshape(2, 3),
    "arr_f4": np.arange(6, dtype="<f4").reshape(2, 3),
    "nan": float("nan"),
}

VALUE_GOLDEN = {
    "none": "07f42cf63b84301f34f2a57ea414e1b8bd0bbfa27fb67aaaed9a849f116087a5",
    "true": "9260f13d8f0a593403c454aa3cb5f78aa44c389b057ec8de30e09c9ce761cf25",
    "int1": "21c827ec33e4ae9765c70d811ed2ba4e95631156cf2b3d6eb14a4a93092dd35c",
    "str1": "fed532dfa97b77da3eea18a4e888739a6d27652a16bbdd91f03b3bb8f9558c8c",
    "float1": "c54738acc5d506a47f56bb0298c331ccd00da7dbbb7c8f63429f5edc83443e30",
    "bytes": "b5a1faa5f1b9f61b29b81523d7eeb6a17982f86add04f20f5eca56871e184623",
    "list": "dbec270c073ca4eda7e852b8cee116bf27973acbab53a45fec33f0947d16773a",
    "tuple": "f01cba3832bbe5bbc35d213d4310c2f718857bbe5bc4257247733bc24f925d34",
    "dict": "997cca1ba49723f4639b5eed08c29f984ca2c881c8b68dfce6265895b3059bc4",
    "set": "265a5970f9967e57a6433e36e08fb1edc57d2e5b0e9c0d70830c90958ebcb34a",
    "path": "9308043e40864960f76eb256fc1740f459212fc390cc85c2854723e27d7febe5",
    "date": "ad178ecccba9aabe1b694a0e93b93fef23eb39f346105ba6a35decad54f22edb",
    "uuid": "5aa504957cd997c4b6931e7bd4d7041c99aee09ccde7f6bc5131a2464b89859d",
    "arr_i8": "a81ea3cff08afb55b8868bff45fc7c5325df83acc2cd8a6978861262a4dbcb2b",
    "arr_f4": "b9863dac314bb39f1d2702795f5302fa049ac7544ac8df7ced0b69de77d051ea",
    "nan": "c6fcbc65e07f7dbdf41a319d9c423b6198d46489c8789875fc58fd8c7b8b80e6",
}


@pytest.mark.parametrize("data", list(FILE_GOLDEN), ids=["empty", "abc", "1MiB"])
def test_hash_file_golden(tmp_path: pathlib.Path, data: bytes) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(path) == FILE_GOLDEN[data]
    assert hash_file(str(path)) == hash_bytes(data) == FILE_GOLDEN[data]
    if shutil.which("b3sum"):
        out = subprocess.run(["b3sum", "--no-names", str(path)], capture_output=True, text=True)
        assert out.stdout.strip() == FILE_GOLDEN[data]


def test_stream_hasher_matches_file(tmp_path: pathlib.Path) -> None:
    data = bytes(range(256)) * 4100
    h = StreamHasher()
    for i in range(0, len(data), 65536):
        h.update(memoryview(data)[i : i + 65536])
    assert h.size == len(data)
    assert h.hexdigest() == FILE_GOLDEN[data]


def test_hash_file_memory_url() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/hashing-test/abc.bin", b"abc")
    try:
        assert hash_file("memory://hashing-test/abc.bin") == FILE_GOLDEN[b"abc"]
    finally:
        fs.rm("/hashing-test", recursive=True)


def test_directory_hash_is_merkle_of_relpaths(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "img.zarr"
    (root / "0" / "0").mkdir(parents=True)
    (root / "zarr.json").write_bytes(b"{}")
    (root / "0" / "0" / "c").write_bytes(b"abc")
    expected = combine("dir", f"0/0/c\0{FILE_GOLDEN[b'abc']}", f"zarr.json\0{hash_bytes(b'{}')}")
    assert hash_file(root) == expected
    (root / "0" / "0" / "c").write_bytes(b"abd")
    assert hash_file(root) != expected


def test_missing_file_is_artifact_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ArtifactNotFound, match=r"nope\.tif"):
        hash_file(tmp_path / "nope.tif")
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "nope.tif")


@pytest.mark.parametrize("name", list(VALUES))
def test_hash_value_golden(name: str) -> None:
    assert hash_value(VALUES[name]) == VALUE_GOLDEN[name]


def test_value_hashes_are_stable_across_processes() -> None:
    code = (
        "import json, sys; from tests.test_hashing import VALUES; "
        "from databacked.hashing import hash_value; "
        "print(json.dumps({k: hash_value(v) for k, v in VALUES.items()}))"
    )
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True
    )
    import json

    assert json.loads(out.stdout) == VALUE_GOLDEN


def test_import_does_not_pull_optional_packages() -> None:
    code = (
        "import sys, databacked.hashing as h; h.hash_value({'a': [1, 2.0]}); "
        "print([m for m in ('numpy', 'pandas', 'pydantic') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_type_tags_keep_values_apart() -> None:
    distinct = [1, "1", 1.0, True, b"1", [1], (1,), {1}, None, 0, -0.0, 0.0, "", []]
    distinct += [pathlib.PurePosixPath("a"), "a", frozenset(), ()]
    digests = [hash_value(v) for v in distinct]
    assert len(set(digests)) == len(distinct)


def test_order_and_equality() -> None:
    assert hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    assert hash_value({3, 1, 2}) == hash_value({1, 2, 3}) == hash_value(frozenset({2, 3, 1}))
    assert hash_value([1, 2]) != hash_value([2, 1])
    assert hash_value(float("nan")) == hash_value(-float("nan"))
    assert hash_value(["ab", "c"]) != hash_value(["a", "bc"])
    assert combine("ab", "c") != combine("a", "bc")
    assert len(hash_value(None)) == 64
    assert SCHEME == "databacked/1"


def test_numpy_values() -> None:
    a = np.arange(12, dtype="<i4").reshape(3, 4)
    assert hash_value(a) == hash_value(a.copy())
    assert hash_value(a.T) == hash_value(np.ascontiguousarray(a.T))
    assert hash_value(a) != hash_value(a.astype("<i8"))
    assert hash_value(a) != hash_value(a.reshape(4, 3))
    assert hash_value(np.float32(1.5)) != hash_value(np.float64(1.5))
    assert hash_value(np.float64(1.5)) != hash_value(1.5)
    assert hash_value([np.int64(2)]) == hash_value([np.int64(2)])
    assert hash_value(np.array([1, "a"], dtype=object)) != hash_value(np.array([1, 2]))
    hash_value(np.array(["2020-01-01"], dtype="datetime64[D]"))


def test_pandas_values() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert hash_value(df) == hash_value(df.copy())
    assert hash_value(df) != hash_value(df.rename(columns={"b": "c"}))
    assert hash_value(df) != hash_value(df.astype({"a": "float64"}))
    assert hash_value(df) != hash_value(df.set_index(pd.Index([5, 6])))
    assert hash_value(df["a"]) != hash_value(df["a"].rename("z"))
    assert hash_value(df.index) == hash_value(pd.RangeIndex(2))


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Params:
    sigma: float
    names: list[str]


class Model(pydantic.BaseModel):
    sigma: float
    names: list[str]


def test_structured_values() -> None:
    assert hash_value(Params(1.0, ["a"])) == hash_value(Params(1.0, ["a"]))
    assert hash_value(Params(1.0, ["a"])) != hash_value(Params(2.0, ["a"]))
    assert hash_value(Model(sigma=1.0, names=["a"])) == hash_value(Model(sigma=1, names=["a"]))
    assert hash_value(Model(sigma=1.0, names=["a"])) != hash_value(Params(1.0, ["a"]))
    assert hash_value(Color.RED) != hash_value(1)
    assert hash_value(Level.LOW) != hash_value(1)
    assert hash_value(Level.LOW) != hash_value(Color.RED)
    assert hash_value(dt.datetime(2024, 1, 2, 3)) != hash_value(dt.date(2024, 1, 2))
    assert hash_value(pathlib.Path("a/b")) == hash_value(pathlib.PurePosixPath("a/b"))


def test_unhashable_value_names_the_type() -> None:
    with socket.socket() as sock, pytest.raises(UnhashableValueError) as info:
        hash_value({"conn": sock})
    assert "'socket.socket'" in str(info.value)
    assert "cache=False" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_self_containing_value_is_unhashable() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(UnhashableValueError, match="contains itself"):
        hash_value({"x": loop})
