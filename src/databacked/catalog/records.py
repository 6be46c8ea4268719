"""The values that travel in and out of the catalog: small frozen dataclasses.

``CallRecord`` goes in (the driver builds one per finished call); ``CallRow``, ``RunRow`` and
``ArtifactRow`` come out of queries. None of them holds a database object, so they pickle and
compare cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from databacked.formats.base import ArtifactRecord

CallStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class InputRef:
    """One input artifact a call consumed: by content hash, and by location when known."""

    hash: str
    """Content hash (plain blake3 hex of the bytes, or the Merkle hash of a directory)."""
    path: str | None = None
    """Path relative to ``store``; ``None`` for an in-memory value with no file."""
    store: str | None = None
    """Store URL the path is relative to; ``None`` means the call's own ``CallRecord.store``."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the driver records about one finished call (completed, failed or skipped)."""

    key: str
    """The call's cache key (64 hex chars)."""
    step: str
    """Step name."""
    fingerprint: str = ""
    """Step fingerprint (``name@version`` or a source hash)."""
    run_id: str | None = None
    """Run that executed the call."""
    status: CallStatus = "ok"
    """``ok`` completes the key (cache); ``failed``/``skipped`` are history only."""
    store: str = ""
    """Store URL the output paths (and inputs without their own store) are relative to."""
    params_hash: str = ""
    """Canonical hash of the parameter values."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able summary of the parameters; never secrets."""
    inputs: Mapping[str, Sequence[InputRef | str]] = field(default_factory=dict)
    """Argument name -> input artifacts in order; a plain ``str`` is a content hash alone."""
    outputs: Mapping[str, ArtifactRecord] = field(default_factory=dict)
    """Output name -> what the write produced (path, hash, size, format, stamp, metadata)."""
    started: float | None = None
    """Epoch seconds when the call started."""
    finished: float | None = None
    """Epoch seconds when the call finished."""
    host: str = ""
    """Host the call ran on."""
    pid: int | None = None
    """Process id of the worker."""
    stdout: str = ""
    """Tail of captured standard output (bounded by the caller)."""
    stderr: str = ""
    """Tail of captured standard error (bounded by the caller)."""
    log: str = ""
    """Tail of the call's log: stdout, stderr and ``logging`` records in order."""
    error_type: str = ""
    """Exception class name for a failed call."""
    error_message: str = ""
    """Exception message for a failed call."""
    traceback: str = ""
    """Formatted traceback for a failed call."""


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """An artifact as the catalog knows it: one version of the bytes at a store path."""

    store: str
    path: str
    hash: str
    size: int
    format: str
    stamp: str
    metadata: dict[str, Any]
    key: str | None = None
    """Key of the call that produced it (``None`` for files saved outside a pipeline)."""
    created: float | None = None
    """Epoch seconds when this version was (last) recorded."""


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call read back: a completed call (``lookup``) or one attempt (``calls_of_run``)."""

    key: str
    step: str
    status: str
    run_id: str | None = None
    fingerprint: str = ""
    params_hash: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    host: str = ""
    pid: int | None = None
    stdout: str = ""
    stderr: str = ""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    created: float | None = None
    log: str = ""
    """Tail of the call's log (stdout, stderr, logging); the whole log is in the store."""
    outputs: dict[str, ArtifactRow] = field(default_factory=dict)
    """Output name -> artifact, with the artifact's current stamp."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One execution of a pipeline."""

    id: str
    pipeline: str
    status: str
    started: float
    finished: float | None = None
    host: str = ""
    user: str = ""
    pid: int | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str = ""
    packages: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A lease on a key: who is computing it, from where, and until when it is valid."""

    key: str
    owner: str
    host: str = ""
    pid: int | None = None
    acquired: float = 0.0
    heartbeat: float = 0.0
    expires: float = 0.0
    """Epoch seconds after which another driver may take the key over."""


@dataclass(frozen=True, slots=True)
class LineageRow:
    """One artifact in a file's ancestry, as ``Catalog.lineage`` lists them (breadth first)."""

    depth: int
    """0 for the file asked about, 1 for the inputs of the call that made it, and so on."""
    hash: str
    """Content hash of this artifact."""
    path: str | None = None
    """Path relative to ``store``; ``None`` for an input known only by its hash."""
    store: str | None = None
    """Store URL of ``path``."""
    call: CallRow | None = None
    """The completed call that produced these bytes; ``None`` for a source file."""
    inputs: tuple[InputRef, ...] = ()
    """That call's inputs, in argument order (each listed again at ``depth + 1``)."""
    parent: str | None = None
    """Key of the call (one level up) that consumed this artifact; ``None`` at depth 0."""
    argument: str | None = None
    """Argument name under which the parent call consumed it."""


__all__ = [
    "ArtifactRow",
    "CallRecord",
    "CallRow",
    "CallStatus",
    "InputRef",
    "LeaseRow",
    "LineageRow",
    "RunRow",
]
