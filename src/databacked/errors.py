"""Every error databacked raises on purpose, in one tree.

Messages are written for the scientist: what was wrong, which file or step, what to do.
A library's exception is wrapped where it enters our code (``raise StoreError(...) from exc``)
so the cause is kept for ``--debug``.

::

    DatabackedError
    ├── ConfigError                  bad configuration value or file
    ├── StoreError                   the store cannot be reached or refused an operation
    │   ├── PathEscapeError          a path that would leave the store root (also ValueError)
    │   └── ArtifactNotFound         no file at that path (also FileNotFoundError)
    ├── FormatError                  a value or file a format cannot handle
    │   ├── UnknownFormatError       no format for this extension/type (also ValueError)
    │   └── CorruptFileError         the bytes are not a valid file of that format
    ├── UnhashableValueError         a parameter value without a canonical hash (also TypeError)
    ├── IntegrityError               the bytes no longer match their recorded hash
    ├── CatalogError                 the catalog database cannot be opened or queried
    ├── PipelineError                a pipeline that cannot run as written (checked before running)
    │   ├── TargetEscapeError        a rendered target leaves the store
    │   └── TargetConflictError      two calls render the same target
    ├── StepFailed                   a call raised; carries the step, key and original error
    ├── CallTimeout                  a call ran past its timeout and was stopped
    ├── ExecutorError                an executor cannot start, reach its cluster or deliver a call
    ├── WireError                    a malformed or hostile tar on the worker protocol
    │   └── RefusedMessage           a worker will not run it: unsigned, pickle, not a step
    └── SpecError                    an invalid declarative pipeline spec
"""

from __future__ import annotations


class DatabackedError(Exception):
    """Base of every error databacked raises for users."""


class ConfigError(DatabackedError):
    """A configuration value or file is invalid."""


class StoreError(DatabackedError):
    """The store could not be reached, or refused an operation."""


class PathEscapeError(StoreError, ValueError):
    """A relative path would leave the store root (absolute, ``..``, NUL...)."""


class ArtifactNotFound(StoreError, FileNotFoundError):
    """No file exists at the requested path."""


class FormatError(DatabackedError):
    """A format cannot write this value or read this file."""


class UnknownFormatError(FormatError, ValueError):
    """No format matches this file extension or value type."""


class CorruptFileError(FormatError):
    """A file's bytes are not a valid file of its format (truncated, corrupt)."""


class UnhashableValueError(DatabackedError, TypeError):
    """A parameter value has no canonical hash."""


class IntegrityError(DatabackedError):
    """An artifact's bytes no longer match the hash recorded for it."""


class CatalogError(DatabackedError):
    """The catalog database could not be opened, migrated or queried."""


class PipelineError(DatabackedError):
    """A pipeline cannot run as written; found before anything runs."""


class TargetEscapeError(PipelineError, ValueError):
    """A rendered target path would leave the store."""


class TargetConflictError(PipelineError):
    """Two calls render the same target path."""


class StepFailed(DatabackedError):
    """A call of a step raised an exception.

    ``step`` and ``key`` name the call; ``error_type`` and ``error_message`` describe
    the original exception, which may live in another process.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        key: str = "",
        error_type: str = "",
        error_message: str = "",
        traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.step = step
        self.key = key
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class CallTimeout(DatabackedError):
    """A call ran past its ``timeout=`` (or a datum past ``datum_timeout``) and was stopped."""


class ExecutorError(DatabackedError):
    """An executor could not start, reach its cluster, or deliver a call."""


class WireError(DatabackedError):
    """A tar on the worker protocol is malformed or hostile."""


class RefusedMessage(WireError):
    """A worker refused a message: bad signature, pickle it was not allowed, or a function
    that is not a databacked entry point, step or spec transform. Nothing of it ran."""


class SpecError(DatabackedError):
    """A declarative pipeline spec is invalid."""


__all__ = [
    "ArtifactNotFound",
    "CallTimeout",
    "CatalogError",
    "ConfigError",
    "CorruptFileError",
    "DatabackedError",
    "ExecutorError",
    "FormatError",
    "IntegrityError",
    "PathEscapeError",
    "PipelineError",
    "RefusedMessage",
    "SpecError",
    "StepFailed",
    "StoreError",
    "TargetConflictError",
    "TargetEscapeError",
    "UnhashableValueError",
    "UnknownFormatError",
    "WireError",
]
