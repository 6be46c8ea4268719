"""Hostile inputs: tar bombs, links and ``..`` in worker tars, image headers declaring huge
sizes, malformed specs. Only databacked's error types come out, nothing is written outside
the store, and no image is allocated at its declared size."""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_report import Campaign

import databacked as db
from databacked.errors import DatabackedError, WireError
from databacked.executors.wire import Limits, read_tar
from databacked.specs.loading import load_text

# --- worker tars ------------------------------------------------------------------------------


def _tar(*members: tarfile.TarInfo, data: bytes = b"", gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def _bomb() -> bytes:
    """A gzip stream of a tar whose one member declares 1 GiB of zeros (about 1 MiB)."""
    header = _info("call.json", size=2**30)
    raw = header.tobuf(tarfile.PAX_FORMAT)
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    out = [zeros.compress(raw)]
    block = b"\0" * 2**20
    for _ in range(1024):
        out.append(zeros.compress(block))
    out.append(zeros.flush())
    return b"".join(out)


HOSTILE_TARS: dict[str, Callable[[], bytes]] = {
    "symlink out": lambda: _tar(_info("x", tarfile.SYMTYPE, link="/etc/passwd")),
    "hard link out": lambda: _tar(_info("x", tarfile.LNKTYPE, link="../../etc/passwd")),
    "dot-dot member": lambda: _tar(_info("../../escape.txt", size=2), data=b"hi"),
    "absolute member": lambda: _tar(_info("/tmp/escape.txt", size=2), data=b"hi"),
    "device member": lambda: _tar(_info("dev", tarfile.CHRTYPE)),
    "fifo member": lambda: _tar(_info("fifo", tarfile.FIFOTYPE)),
    "gzip bomb": _bomb,
    "huge declared member": lambda: _info("big", size=2**40).tobuf(tarfile.PAX_FORMAT) + b"z",
    "too many members": lambda: _tar(*[_info(f"m{i}") for i in range(300)]),
    "duplicate member": lambda: _tar(_info("a", size=1), _info("a", size=1), data=b"x"),
    "truncated stream": lambda: _tar(_info("a", size=10_000), data=b"y" * 10_000)[:3000],
    "not a tar": lambda: b"\x00garbage" * 100,
    # found by the property test: a NUL in a (pax) name made the data filter raise ValueError
    "NUL in a long name": lambda: _tar(_info("a\0b" + "x" * 120, size=1), data=b"x"),
    "empty gzip": lambda: gzip.compress(b""),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TARS))
def test_hostile_worker_tars(name: str, tmp_path: Path, campaign: Campaign) -> None:
    before = set(os.listdir(tmp_path.parent))
    limits = Limits(max_member=64 * 2**20, max_total=128 * 2**20, max_members=256)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        files = read_tar(io.BytesIO(HOSTILE_TARS[name]()), limits)
    except WireError:
        files = None
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert files is None or name in ("empty gzip",), (name, files and list(files))
    assert set(os.listdir(tmp_path.parent)) == before
    assert not Path("/tmp/escape.txt").exists()
    assert grown < 200 * 1024, f"{name}: {grown} KiB more memory"  # ru_maxrss is in KiB
    campaign.add("hostile worker tars", faults=1, note="links, '..', devices, bombs, truncation")


# --- image headers declaring huge sizes -----------------------------------------------------


def _huge_tiff(path: Path, *, compressed: bool) -> None:
    import tifffile

    tifffile.imwrite(path, np.zeros((16, 16), "u2"), compression="zlib" if compressed else None)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tags = tif.pages[0].tags
        tags["ImageWidth"].overwrite(1_000_000)
        tags["ImageLength"].overwrite(1_000_000)
        tags["RowsPerStrip"].overwrite(1_000_000)


def _huge_zarr(path: Path) -> None:
    db.save(np.zeros((2, 16, 16), "u2"), str(path), format=db.OmeZarr(dims="CYX"))
    meta = path / "s0" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["shape"] = [2, 1_000_000, 1_000_000]
    meta.write_text(json.dumps(doc))


def _huge_npy(path: Path) -> None:
    header = "{'descr': '<u2', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())


def _huge_png(path: Path) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    sig = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(sig + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


HUGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "tiff, uncompressed": ("a.tif", lambda p: _huge_tiff(p, compressed=False)),
    "tiff, zlib": ("b.tif", lambda p: _huge_tiff(p, compressed=True)),
    "ome-tiff, zlib": ("c.ome.tif", lambda p: _huge_tiff(p, compressed=True)),
    "ome-zarr": ("d.ome.zarr", _huge_zarr),
    "npy": ("e.npy", _huge_npy),
    "png": ("f.png", _huge_png),
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_image_headers_refused_before_allocating(
    name: str, tmp_path: Path, campaign: Campaign
) -> None:
    filename, make = HUGE[name]
    path = tmp_path / filename
    make(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DatabackedError) as info:
        db.load(str(path))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert grown < 200 * 1024, f"{name}: {grown} KiB more memory"
    campaign.add("image headers declaring huge sizes", faults=1, note="tiff, ome-zarr, npy, png")


# --- malformed specs --------------------------------------------------------------------------

MALFORMED = [
    "pipeline: [unclosed",
    "pipeline: p\ninput: 42\ntransform: {python: m:f}",
    "pipeline: p\ninput:\n  pfs: {repo: raw, glob: '/**'}\ntransform: {cmd: 42}",
    "pipeline: p\ninput:\n  pfs: {repo: ../../etc, glob: '/*'}\ntransform: {python: m:f}",
    "pipeline: p\ninput:\n  cross: []\ntransform: {python: m:f}",
    "pipeline: p\ninput:\n  pfs: {repo: raw, glob: '/(*'}\ntransform: {python: m:f}",
    "pipeline: p\ninput:\n  join: [{pfs: {repo: a, glob: '/*'}}]\ntransform: {python: m:f}",
    "!!python/object/apply:os.system ['touch /tmp/databacked-canary']",
    "a: &a [*a, *a, *a]",
    "pipeline: " + "x" * 100_000,
    "\x00\x01\x02",
    "pipeline: p\n" * 3,
    "---\n- 1\n- 2\n",
    "pipeline: p\ninput: {pfs: {repo: raw, glob: '/*'}}\ntransform: {python: 'os:system'}\n"
    "output: {target: '/etc/{x}'}",
]


@pytest.mark.parametrize("text", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_specs_are_spec_errors(text: str, campaign: Campaign) -> None:
    try:
        load_text(text, "hostile.yml")
    except DatabackedError as exc:
        assert "\n" not in str(exc).strip() or "hostile.yml" in str(exc)
    assert not Path("/tmp/databacked-canary").exists()
    campaign.add("malformed specs", faults=1, note="only SpecError/DatabackedError")
