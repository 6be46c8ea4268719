"""The tar wire protocol: values round trip in safe formats; hostile tars are refused."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest

from databacked.errors import ConfigError, ExecutorError, WireError
from databacked.executors.wire import (
    CALL,
    PROTOCOL,
    Decoder,
    Encoder,
    Limits,
    decode_error,
    encode_error,
    read_tar,
    reference,
    write_tar,
)
from databacked.formats.base import ArtifactRecord
from databacked.store import Store
from databacked.testing.executor_contract import ContractError, add


class Shape(NamedTuple):
    y: int
    x: int


def round_trip(value: Any, *, allow_pickle: bool = False) -> Any:
    encoder = Encoder("params", allow_pickle=allow_pickle)
    doc = {"protocol": PROTOCOL, "value": encoder.encode(value)}
    data = write_tar(CALL, doc, encoder.members)
    files = read_tar(io.BytesIO(data))
    assert next(iter(files)) == CALL
    decoded = json.loads(files[CALL])["value"]
    return Decoder(files, allow_pickle=allow_pickle).decode(decoded)


def test_json_parameters_round_trip() -> None:
    value = {
        "name": "A01",
        "n": 3,
        "scale": 0.5,
        "flags": [True, None],
        "pair": (1, "x"),
        "ids": {1: "one", (2, 3): "two-three"},
        "tagged": {"$type": "not a tag"},
        "inf": math.inf,
        "path": Path("raw/a.tif"),
        "set": frozenset({"a"}),
    }
    back = round_trip(value)
    assert back == value
    assert isinstance(back["pair"], tuple)
    assert isinstance(back["path"], Path)
    assert round_trip(Shape(3, 4)) == (3, 4)
    assert math.isnan(round_trip(math.nan))


def test_arrays_travel_as_npy_members() -> None:
    array = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    encoder = Encoder("params")
    encoded = encoder.encode(array)
    assert encoded["$type"] == "npy"
    assert list(encoder.members) == ["params/0.npy"]
    assert encoder.members["params/0.npy"].startswith(b"\x93NUMPY")
    back = round_trip(array)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    scalar = round_trip(np.float32(2.5))
    assert scalar == np.float32(2.5)
    assert scalar.dtype == np.float32


def test_dataframes_travel_as_parquet() -> None:
    frame = pd.DataFrame({"cell": [1, 2, 3], "area": [10.5, 11.0, 9.25], "well": list("ABC")})
    encoder = Encoder("params")
    encoder.encode(frame)
    member = next(iter(encoder.members.values()))
    assert member[:4] == b"PAR1"
    pd.testing.assert_frame_equal(round_trip(frame), frame)


def test_bytes_dataclasses_and_references_round_trip() -> None:
    record = ArtifactRecord("a/b.npy", "ab" * 32, 10, "npy", "m:1:2", {"shape": [2]})
    assert round_trip(record) == record
    assert round_trip(b"\x00\x01raw") == b"\x00\x01raw"
    assert round_trip(add) is add


def test_store_travels_without_secrets(tmp_path: Path) -> None:
    options = {
        "key": "AKIA-secret",
        "secret": "very-secret",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "aws_secret_access_key": "x"},
    }
    store = Store("s3://bucket/prefix", storage_options=options)
    encoded = json.dumps(Encoder("p").encode(store))
    assert "secret" not in encoded.replace("aws_secret", "")
    assert "AKIA" not in encoded
    back = round_trip(store)
    assert back.url == "s3://bucket/prefix"
    assert back.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    local = round_trip(Store(tmp_path / "data"))
    assert local.url == str(tmp_path / "data")


def test_pickle_only_when_opted_in() -> None:
    class Opaque:
        pass

    with pytest.raises(WireError, match=r"safe format.*allow_pickle"):
        Encoder("p").encode(Opaque())
    with pytest.raises(WireError, match="object"):
        Encoder("p").encode(np.array([object()], dtype=object))
    assert isinstance(round_trip(Opaque(), allow_pickle=True), Opaque)
    # A pickle member in a call that did not opt in is never unpickled.
    encoder = Encoder("p", allow_pickle=True)
    encoded = encoder.encode(Opaque())
    with pytest.raises(WireError, match="pickle is not allowed here"):
        Decoder(encoder.members).decode(encoded)


def test_references_refuse_what_a_worker_cannot_import() -> None:
    assert reference(add) == "databacked.testing.executor_contract:add"
    with pytest.raises(WireError, match="lambda"):
        reference(lambda x: x)

    def local() -> None: ...

    with pytest.raises(WireError, match="local definition"):
        reference(local)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def triple(x):\n    return 3 * x\n", namespace)
    with pytest.raises(WireError, match="__main__"):
        reference(namespace["triple"])


def test_errors_come_back_with_their_type() -> None:
    back = decode_error(encode_error(ContractError("bad well"), "tb text"), ExecutorError)
    assert type(back) is ContractError
    assert str(back) == "bad well"
    assert "tb text" in back.__notes__[0]
    unknown = {"type": "nowhere.mod:Gone", "message": "lost", "args": ["lost"]}
    fallback = decode_error(unknown, ExecutorError)
    assert isinstance(fallback, ExecutorError)
    assert "Gone: lost" in str(fallback)


# --- hostile tars ----------------------------------------------------------------------------


def hostile(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (tarfile.TarInfo("../x"), "outside"),
        (tarfile.TarInfo("params/../../x"), "outside"),
        (tarfile.TarInfo("/etc/cron.d/evil"), "absolute"),
        (link("passwd", "/etc/passwd", tarfile.SYMTYPE), "absolute"),
        (link("up", "../../etc/passwd", tarfile.SYMTYPE), "outside"),
        (link("hard", "../../etc/passwd", tarfile.LNKTYPE), "outside"),
        (link("inside", "call.json", tarfile.SYMTYPE), "link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-abs", "symlink-up", "hardlink", "link"],
)
def test_hostile_members_are_refused(
    member: tarfile.TarInfo, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(WireError, match=why) as caught:
        read_tar(io.BytesIO(hostile(member)))
    assert repr(member.name) in str(caught.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]


def test_size_and_count_limits() -> None:
    big = hostile(tarfile.TarInfo("params/0.bin"), data=b"y" * 100)
    with pytest.raises(WireError, match=r"'params/0.bin'.*100 bytes.*limit of 10"):
        read_tar(io.BytesIO(big), Limits(max_member=10))
    many = hostile(*(tarfile.TarInfo(f"params/{i}.bin") for i in range(5)))
    with pytest.raises(WireError, match="more than 3 members"):
        read_tar(io.BytesIO(many), Limits(max_members=3))
    with pytest.raises(WireError, match="exceeds 3 bytes"):
        read_tar(io.BytesIO(many), Limits(max_total=3))
    assert Limits.from_env({"DATABACKED_WIRE_MAX_MEMBER": "7"}).max_member == 7
    with pytest.raises(ConfigError, match="DATABACKED_WIRE_MAX_TOTAL='lots'"):
        Limits.from_env({"DATABACKED_WIRE_MAX_TOTAL": "lots"})


def test_garbage_and_truncated_input() -> None:
    with pytest.raises(WireError, match="not a tar"):
        read_tar(io.BytesIO(b"this is not a tar at all" * 40))
    whole = write_tar(CALL, {"protocol": PROTOCOL}, {"params/0.bin": b"z" * 4000})
    with pytest.raises(WireError, match="truncated"):
        read_tar(io.BytesIO(whole[:3000]))


def test_worker_refuses_a_hostile_tar_with_exit_2(tmp_path: Path) -> None:
    payload = hostile(link("passwd", "/etc/passwd", tarfile.SYMTYPE))
    proc = subprocess.run(
        [sys.executable, "-m", "databacked.worker"],
        input=payload,
        capture_output=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "WireError" in lines[0]
    assert "'passwd'" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_npy_member_declaring_a_huge_array_is_refused_before_allocating() -> None:
    """A message's .npy header says 10^12 float64s in a few bytes: no allocation, one
    WireError (reliability: hostile inputs)."""
    encoder = Encoder("params")
    encoded = encoder.encode(np.zeros(3))
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    members = {name: buffer.getvalue() + b"\0" * 24 for name in encoder.members}
    files = read_tar(io.BytesIO(write_tar(CALL, {"protocol": PROTOCOL, "value": encoded},
                                          members)))  # fmt: skip
    with pytest.raises(WireError, match=r"declares an array of shape \(1000000, 1000000\)"):
        Decoder(files).decode(encoded)
