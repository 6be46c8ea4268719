"""Seed 000's spelling on Prefect 3: ``task(result=LocalResult(...), target=lambda **kw: ...)``.

The decorated function's return value is written in its native format at
``result.dir / target(**arguments)`` (atomically, through the ``Store``; hashed while
written; recorded in the catalog), and the task returns that value as read back from the
file, lazily. A cached run returns the same thing from the slim pointer Prefect keeps, so a
miss and a hit give downstream tasks identical inputs. Going remote is replacing
``LocalResult`` with ``S3Result``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from databacked.errors import PipelineError
from databacked.store import Store


class ArrayToOmeTiff:
    """Seed 000's serializer: arrays to OME-TIFF with dims and channel names."""

    def __init__(
        self,
        dimensions: str | None = None,
        channel_names: list[str] | None = None,
        physical_pixel_sizes: Any = None,
        compression: str | None = None,
    ) -> None:
        from databacked.formats import OmeTiff

        self.format = OmeTiff(
            dims=dimensions,
            channel_names=channel_names,
            physical_pixel_sizes=physical_pixel_sizes,
            compression=compression,
        )

    def format_for(self, path: str, value: Any) -> Any:
        return self.format

    def spec(self) -> dict[str, Any]:
        return self.format.spec()


class ArrayToDefaultWriter:
    """Seed 000's serializer that picks the format from the target's extension (or value)."""

    def format_for(self, path: str, value: Any) -> Any:
        from databacked.formats.registry import resolve_format

        return resolve_format(path, value)

    def spec(self) -> dict[str, Any]:
        return {"name": "by-extension"}


def _serializer(serializer: Any) -> Any:
    if serializer is None:
        return ArrayToDefaultWriter()
    if isinstance(serializer, type):
        return serializer()
    if hasattr(serializer, "format_for"):
        return serializer
    from databacked.formats import Format

    if isinstance(serializer, Format):
        chosen = ArrayToOmeTiff.__new__(ArrayToOmeTiff)
        chosen.format = serializer
        return chosen
    raise PipelineError(
        f"{serializer!r} is not a serializer: use ArrayToOmeTiff(...), ArrayToDefaultWriter "
        "or a databacked format such as db.Png()."
    )


class LocalResult:
    """Task results as native files under a local folder (seed 000)."""

    def __init__(
        self,
        dir: str | os.PathLike[str] = ".",
        serializer: Any = None,
        *,
        storage_options: dict | None = None,
    ) -> None:
        self.dir = os.fspath(dir)
        self.serializer = _serializer(serializer)
        self.storage_options = storage_options
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            if self.storage_options is None:
                from databacked.integrations.prefect.context import store

                # the integration's shared Store: its catalog batches sync what it wrote
                self._store = store(self._root())
            else:
                self._store = Store(self._root(), storage_options=self.storage_options)
        return self._store

    def _root(self) -> str:
        return os.path.abspath(os.path.expanduser(self.dir))

    def write(self, value: Any, path: str, key: str | None) -> Any:
        """Write ``value`` at ``path`` in the result's store; returns its Pointer."""
        from databacked.integrations.prefect.pointers import Pointer

        rel = self.store.check_path(path)
        fmt = self.serializer.format_for(rel, value)
        value = _materialise(value, fmt)
        record = fmt.write(value, self.store, rel)
        return Pointer.from_record(self.store, record, fmt, key)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}


class S3Result(LocalResult):
    """Task results as native files under ``s3://bucket/prefix/`` (credentials: the usual
    AWS chain, or ``storage_options``)."""

    def _root(self) -> str:
        if not self.dir.startswith("s3://"):
            raise PipelineError(
                f"S3Result(dir={self.dir!r}) needs an s3:// URL such as 's3://bucket/prefix/'."
            )
        return self.dir.rstrip("/")


def _materialise(value: Any, fmt: Any) -> Any:
    """Dask arrays are computed, except for formats that write them plane by plane."""
    if hasattr(value, "__dask_graph__") and fmt.name not in ("ome-tiff", "tiff", "ome-zarr"):
        return value.compute()
    return value


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Prefect's ``task`` decorator, also taking seed 000's ``result=`` and ``target=``.

    Without them it is ``prefect.task`` unchanged. With them, it returns a real Prefect task
    (``.map``, ``.submit``, retries, task runners) keyed by :class:`DatabackedCache` whose
    return value is written at ``result.dir / target(**arguments)``.
    """
    if fn is None:
        return lambda f: task(f, **options)
    result = options.pop("result", None)
    target = options.pop("target", None)
    import prefect

    if result is None and target is None:
        return prefect.task(fn, **options)
    if result is None or target is None:
        raise PipelineError(
            f"Task {fn.__name__!r} gives only one of result= and target=; give both "
            "(result=LocalResult(dir=...), target=lambda **kwargs: 'name.ome.tiff')."
        )
    from databacked.integrations.prefect.context import records_dir
    from databacked.integrations.prefect.policy import DatabackedCache
    from databacked.integrations.prefect.serializer import DatabackedSerializer

    wrapper = _writing(fn, result, target)
    options.setdefault("cache_policy", DatabackedCache())
    options.setdefault("result_serializer", DatabackedSerializer())
    options.setdefault("persist_result", True)
    if result.store.is_local:
        options.setdefault("result_storage", records_dir(result.store))
    else:
        options.setdefault("result_storage", records_dir(None))
    return prefect.task(wrapper, **options)


def _render(target: Any, arguments: dict[str, Any], name: str) -> str:
    path = target(**arguments) if callable(target) else str(target).format(**arguments)
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise PipelineError(
            f"The target of task {name!r} gave {path!r}; it must return a file name such as "
            "'7.ome.tiff'."
        )
    return os.fspath(path)


def _writing(fn: Callable[..., Any], result: LocalResult, target: Any) -> Callable[..., Any]:
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run_and_write(*args: Any, **kwargs: Any) -> Any:
        from databacked.integrations.prefect import recording
        from databacked.integrations.prefect.lazy import lazy_value

        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        path = result.store.check_path(_render(target, dict(bound.arguments), fn.__name__))
        value = fn(*args, **kwargs)
        pointer = result.write(value, path, _current_key())
        recording.remember(pointer)
        return lazy_value(pointer)

    def extras(arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "__store__": result.store.url,
            "__target__": _render(target, dict(arguments), fn.__name__),
            "__format__": result.serializer.spec(),
        }

    run_and_write.__databacked_extras__ = extras  # type: ignore[attr-defined]
    return run_and_write


def _current_key() -> str | None:
    from prefect.transactions import get_transaction

    txn = get_transaction()
    return getattr(txn, "key", None)


__all__ = ["ArrayToDefaultWriter", "ArrayToOmeTiff", "LocalResult", "S3Result", "task"]
