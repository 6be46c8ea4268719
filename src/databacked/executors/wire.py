"""The tar wire protocol: a call description and its values, to and from a tar stream.

A call travels as a tar whose first member is ``call.json``; values that JSON cannot hold
travel as members in safe formats (``.npy`` without pickle, Parquet, raw bytes). The answer
is a tar with ``outcome.json`` and ``logs/``. Nothing is unpickled unless the reader opted in
(``allow_pickle``); references (functions, dataclasses) resolve through a resolver the reader
chooses, so a worker decides what a message may name. See ``docs/wire-protocol.md``.

Values are encoded generically -- dataclasses by their class reference and fields, functions
by ``module:qualname`` -- so this module needs no knowledge of the engine's types.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pathlib
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from databacked.errors import ConfigError, DatabackedError, WireError
from databacked.executors.references import (
    Resolver,
    reference,
    resolve,
    resolve_loaded,
    split_reference,
)
from databacked.formats.limits import check_npy
from databacked.secrets import public
from databacked.store import Store

PROTOCOL = "databacked-wire/1"
CALL = "call.json"
OUTCOME = "outcome.json"
TAG = "$type"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on a tar read from the wire, so a hostile tar cannot exhaust memory."""

    max_member: int = 2 * 1024**3
    """Largest single member, in bytes."""
    max_total: int = 8 * 1024**3
    """Largest sum of member sizes, in bytes."""
    max_members: int = 100_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """Limits from ``DATABACKED_WIRE_MAX_MEMBER``/``_MAX_TOTAL``/``_MAX_MEMBERS``."""
        values = {}
        for field in dataclasses.fields(cls):
            text = environ.get(f"DATABACKED_WIRE_{field.name.upper()}")
            if text:
                try:
                    values[field.name] = int(text)
                except ValueError as exc:
                    raise ConfigError(
                        f"DATABACKED_WIRE_{field.name.upper()}={text!r} is not a whole number "
                        "of bytes (or members); set it to an integer such as 1073741824."
                    ) from exc
        return cls(**values)


# --- tar streams ---------------------------------------------------------------------------


def write_tar(
    document: str, payload: dict[str, Any], members: Mapping[str, bytes], key: bytes | None = None
) -> bytes:
    """A tar with ``document`` (JSON of ``payload``) first, then ``members``; reproducible.

    With ``key``, a last member ``signature`` holds the HMAC of the others (``signing.py``).
    """
    from databacked.executors.signing import SIGNATURE, signature

    body = {document: json.dumps(payload, allow_nan=False).encode(), **members}
    if key is not None:
        body[SIGNATURE] = signature(body, key)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in body.items():
            _add(tar, name, data)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def read_tar(stream: IO[bytes], limits: Limits | None = None) -> dict[str, bytes]:
    """The regular files of a tar stream, by name, in memory; a hostile tar is a WireError.

    Every member goes through tarfile's ``data`` filter (no absolute paths, no ``..``, no
    links out, no devices); links of any kind are refused, since the protocol has none.
    Nothing is written to disk.
    """
    limits = limits or Limits()
    root = os.path.join(tempfile.gettempdir(), "databacked-wire")  # notional: never written
    files: dict[str, bytes] = {}
    total = count = 0
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise WireError(f"The wire input is not a tar stream ({exc}); send a tar.") from exc
    with tar:
        try:
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise WireError(
                        f"The wire tar has more than {limits.max_members} members "
                        f"(at {member.name!r}); send fewer values or raise the limit."
                    )
                _check_member(member, root)
                if member.isdir():
                    continue
                if member.size > limits.max_member:
                    raise WireError(
                        f"Member {member.name!r} of the wire tar is {member.size} bytes, over "
                        f"the limit of {limits.max_member}; raise DATABACKED_WIRE_MAX_MEMBER."
                    )
                total += member.size
                if total > limits.max_total:
                    raise WireError(
                        f"The wire tar exceeds {limits.max_total} bytes in all at member "
                        f"{member.name!r}; raise DATABACKED_WIRE_MAX_TOTAL."
                    )
                name = os.path.normpath(member.name).replace(os.sep, "/")
                if name in files:
                    raise WireError(f"Member {name!r} appears twice in the wire tar.")
                handle = tar.extractfile(member)
                files[name] = handle.read() if handle is not None else b""
        except (tarfile.TarError, EOFError) as exc:
            raise WireError(f"The wire tar is truncated or malformed: {exc}.") from exc
    return files


def _check_member(member: tarfile.TarInfo, root: str) -> None:
    if "\0" in member.name or "\0" in member.linkname:
        # before the data filter, whose realpath raises ValueError on a NUL
        raise WireError(f"Refused member {member.name!r} of the wire tar: NUL in its name.")
    if member.name.startswith(("/", "\\")) or os.path.isabs(member.name):
        # The data filter would strip the slash and go on; a protocol peer never sends one.
        raise WireError(
            f"Refused member {member.name!r} of the wire tar: it has an absolute path; "
            "send only plain files with relative paths."
        )
    try:
        tarfile.data_filter(member, root)
    except tarfile.FilterError as exc:
        raise WireError(
            f"Refused member {member.name!r} of the wire tar: {exc}; "
            "send only plain files with relative paths."
        ) from exc
    if not (member.isfile() or member.isdir()):
        raise WireError(
            f"Refused member {member.name!r} of the wire tar: it is a link or special file; "
            "send only plain files."
        )


def read_document(files: Mapping[str, bytes], document: str) -> dict[str, Any]:
    """The JSON object in member ``document``, checked for the protocol tag."""
    if document not in files:
        raise WireError(f"The wire tar has no {document}; it must be the first member.")
    try:
        payload = json.loads(files[document])
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"{document} in the wire tar is not valid JSON: {exc}.") from exc
    if not isinstance(payload, dict) or payload.get("protocol") != PROTOCOL:
        raise WireError(f"{document} must be a JSON object with protocol {PROTOCOL!r}.")
    return payload


def public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Storage options without credentials (nested dicts too): the worker brings its own."""
    return public(options)


# --- values --------------------------------------------------------------------------------


class Encoder:
    """Turns values into JSON plus binary members named ``<prefix>/<n>.<ext>``."""

    def __init__(self, prefix: str, *, allow_pickle: bool = False) -> None:
        self.prefix = prefix
        self.allow_pickle = allow_pickle
        self.members: dict[str, bytes] = {}
        self.modules: set[str] = set()
        """Modules that references in the encoded values name (what a worker must import)."""

    def _reference(self, obj: Any) -> str:
        ref = reference(obj)
        self.modules.add(ref.partition(":")[0])
        return ref

    def _member(self, data: bytes, ext: str) -> str:
        name = f"{self.prefix}/{len(self.members)}.{ext}"
        self.members[name] = data
        return name

    def encode(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, tuple | set | frozenset):
            # Subclasses (named tuples) travel as their base collection.
            kind = next(k for k in (tuple, frozenset, set) if isinstance(value, k)).__name__
            return {TAG: kind, "items": [self.encode(v) for v in value]}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and TAG not in value:
                return {k: self.encode(v) for k, v in value.items()}
            return {
                TAG: "dict",
                "items": [[self.encode(k), self.encode(v)] for k, v in value.items()],
            }
        if isinstance(value, bytes | bytearray):
            return {TAG: "bytes", "member": self._member(bytes(value), "bin")}
        if isinstance(value, pathlib.PurePath):
            return {TAG: "path", "value": str(value)}
        if isinstance(value, Store):
            return {
                TAG: "store",
                "url": value.url,
                "storage_options": public_options(value.storage_options),
                "durability": value.durability,
            }
        array = _numpy_array(value)
        if array is not None:
            return self._npy(value, array)
        if _is_dataframe(value):
            return {TAG: "parquet", "member": self._member(_parquet(value), "parquet")}
        try:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                fields = {
                    f.name: self.encode(getattr(value, f.name))
                    for f in dataclasses.fields(value)
                    if f.init
                }
                return {TAG: "dataclass", "class": self._reference(type(value)), "fields": fields}
            if callable(value):
                return {TAG: "ref", "ref": self._reference(value)}
        except WireError:
            if not self.allow_pickle:
                raise
        return self._pickled(value, f"a value of type {type(value).__qualname__}")

    def _npy(self, value: Any, array: Any) -> dict[str, Any]:
        import numpy as np

        if array.dtype.hasobject:
            return self._pickled(value, "a numpy array of Python objects")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        scalar = not isinstance(value, np.ndarray)
        return {TAG: "npy", "member": self._member(buffer.getvalue(), "npy"), "scalar": scalar}

    def _pickled(self, value: Any, what: str) -> dict[str, Any]:
        if not self.allow_pickle:
            raise WireError(
                f"{what} cannot travel over the wire in a safe format (JSON, .npy, Parquet); "
                "use one of those types, or opt in with allow_pickle=True."
            )
        import cloudpickle

        return {TAG: "pickle", "member": self._member(cloudpickle.dumps(value), "pkl")}


class Decoder:
    """Rebuilds values from JSON and the members of a tar read by :func:`read_tar`."""

    def __init__(
        self,
        members: Mapping[str, bytes],
        *,
        allow_pickle: bool = False,
        resolver: Resolver = resolve_loaded,
    ) -> None:
        self.members = members
        self.allow_pickle = allow_pickle
        self.resolver = resolver

    def _member(self, encoded: dict[str, Any]) -> bytes:
        name = encoded.get("member")
        if not isinstance(name, str) or name not in self.members:
            raise WireError(f"The wire tar lacks the member {name!r} that call.json refers to.")
        return self.members[name]

    def decode(self, encoded: Any) -> Any:
        if isinstance(encoded, list):
            return [self.decode(v) for v in encoded]
        if not isinstance(encoded, dict):
            return encoded
        kind = encoded.get(TAG)
        if kind is None:
            return {k: self.decode(v) for k, v in encoded.items()}
        if kind in ("tuple", "set", "frozenset"):
            items = [self.decode(v) for v in encoded["items"]]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
        if kind == "dict":
            return {self._key(k): self.decode(v) for k, v in encoded["items"]}
        if kind == "float":
            return float(encoded["value"])
        if kind == "bytes":
            return self._member(encoded)
        if kind == "path":
            return pathlib.Path(encoded["value"])
        if kind == "store":
            return Store(
                encoded["url"],
                storage_options=self.decode(encoded.get("storage_options") or {}),
                durability=encoded.get("durability", "batch"),
            )
        if kind == "npy":
            import numpy as np

            member = self._member(encoded)
            try:  # a hostile header must not make numpy allocate what it declares
                check_npy(f"wire member {encoded.get('member')!r}", member)
            except DatabackedError as exc:
                raise WireError(f"Refused a call: {exc}") from exc
            array = np.load(io.BytesIO(member), allow_pickle=False)
            return array[()] if encoded.get("scalar") else array
        if kind == "parquet":
            import pandas as pd

            return pd.read_parquet(io.BytesIO(self._member(encoded)))
        if kind == "ref":
            return self.resolver(encoded["ref"], "ref")
        if kind == "dataclass":
            cls = self.resolver(encoded["class"], "dataclass")
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise WireError(f"{encoded['class']!r} named in the wire tar is not a dataclass.")
            return cls(**{k: self.decode(v) for k, v in encoded["fields"].items()})
        if kind == "pickle":
            if not self.allow_pickle:
                raise WireError(
                    f"The wire tar holds a pickled value ({encoded.get('member')!r}) but pickle "
                    "is not allowed here (a worker needs --allow-pickle); nothing was unpickled."
                )
            import cloudpickle

            return cloudpickle.loads(self._member(encoded))
        raise WireError(f"Unknown value type {kind!r} in the wire tar.")

    def _key(self, encoded: Any) -> Any:
        key = self.decode(encoded)
        return tuple(key) if isinstance(key, list) else key


def _numpy_array(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    return None


def _is_dataframe(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _parquet(frame: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer)
    except Exception as exc:
        raise WireError(
            f"A DataFrame cannot travel as Parquet ({exc}); use string column names and "
            "Arrow-compatible column types."
        ) from exc
    return buffer.getvalue()


# --- errors --------------------------------------------------------------------------------


def encode_error(exc: BaseException, traceback: str) -> dict[str, Any]:
    """An exception as JSON: its type reference, message, arguments when they are plain."""
    cls = type(exc)
    args: Any = None
    try:
        args = Encoder("unused").encode(list(exc.args))
        json.dumps(args, allow_nan=False)
        if not all(isinstance(a, str | int | float | bool | type(None)) for a in exc.args):
            args = None  # only plain arguments: an error must not need members to rebuild
    except (WireError, TypeError, ValueError):
        args = None
    return {
        "type": f"{cls.__module__}:{cls.__qualname__}",
        "message": str(exc) or cls.__name__,
        "args": args,
        "traceback": traceback,
    }


def decode_error(error: Mapping[str, Any], fallback: type[Exception]) -> BaseException:
    """The exception an encoded error describes: its own type when importable, else
    ``fallback`` with the type's name in the message."""
    ref, message = str(error.get("type", "")), str(error.get("message", ""))
    args = error.get("args")
    rebuilt: BaseException | None = None
    try:
        cls = resolve_loaded(ref)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            rebuilt = cls(*args) if isinstance(args, list) else cls(message)
    except Exception:  # noqa: S110 - any failure to rebuild falls back below
        pass
    if rebuilt is None:
        rebuilt = fallback(f"{ref.rpartition(':')[2] or 'Error'}: {message}")
    trace = error.get("traceback")
    if trace:
        rebuilt.add_note(f"Traceback in the worker:\n{trace}")
    return rebuilt


__all__ = [
    "CALL",
    "OUTCOME",
    "PROTOCOL",
    "Decoder",
    "Encoder",
    "Limits",
    "decode_error",
    "encode_error",
    "public_options",
    "read_document",
    "read_tar",
    "reference",
    "resolve",
    "resolve_loaded",
    "split_reference",
    "write_tar",
]
