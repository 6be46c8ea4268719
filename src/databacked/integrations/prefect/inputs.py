"""Cache keys of Prefect task runs, computed the way databacked keys its own calls.

key = ``engine.keys.call_key(fingerprint, params_hash, input content hashes)``: the task's
code by databacked's fingerprint (normalised AST plus project-local helpers: a comment
changes nothing, a changed literal or helper re-runs), its plain parameters canonically, and
its file inputs (CPR resources, artifacts, arrays read back from files) by content.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from databacked.artifact import Artifact
from databacked.engine.keys import call_key, fingerprint, params_hash
from databacked.integrations.prefect.lazy import pointer_of
from databacked.integrations.prefect.resources import Resource

_FINGERPRINTS: dict[tuple[int, str, str | None], str] = {}
_LOCK = threading.Lock()


def task_fingerprint(task: Any) -> str:
    """databacked's fingerprint of a Prefect task's function (memoised per process)."""
    fn = getattr(task, "fn", task)
    name = getattr(task, "name", None) or getattr(fn, "__name__", "task")
    version = getattr(task, "version", None)
    memo = (id(fn), name, version)
    with _LOCK:
        found = _FINGERPRINTS.get(memo)
    if found is None:
        found = fingerprint(_original(fn), name, version)
        with _LOCK:
            _FINGERPRINTS[memo] = found
    return found


def _original(fn: Any) -> Any:
    """The function as defined in its module: Prefect ships tasks to Dask workers pickled by
    value, which drops the source file name, so the source is found through the module."""
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_filename.startswith("<"):
        return fn
    import sys

    found: Any = sys.modules.get(getattr(fn, "__module__", "") or "")
    for part in getattr(fn, "__qualname__", "").split("."):
        found = getattr(found, part, None)
    found = getattr(found, "fn", found)  # a Prefect Task: its function
    found = getattr(found, "__wrapped__", found)
    wanted = getattr(fn, "__wrapped__", fn)
    if getattr(getattr(found, "__code__", None), "co_name", None) == wanted.__code__.co_name:
        return found
    return fn


_KNOWN: dict[str, tuple[str, str]] = {}
"""Stat-cache rows of local input files seen by this process: path -> (stamp, hash)."""
_FOLDERS: set[str] = set()
PREFETCH_LIMIT = 20_000
"""Folders with more files than this are not read ahead from the stat cache."""
_ABSENT = ("", "")


def file_hash(path: str) -> str:
    """Content hash of an input file; unchanged local files are trusted by stat.

    The first file of a folder reads the stat-cache rows of the whole folder in one query, so
    a flow over many images costs one query, not one per task.
    """
    from databacked.engine.files import FileHasher
    from databacked.integrations.prefect import batches
    from databacked.integrations.prefect.context import catalog

    cat = catalog()
    if "://" not in path:
        _prefetch(cat, os.path.dirname(os.path.abspath(path)))
    hasher = FileHasher(cat)
    hasher.known = _KNOWN  # shared: a row hashed here serves the next task too
    digest = hasher.hash(path, "prefect", os.path.basename(path))
    if hasher.fresh:  # remembered in the next catalog batch, not one transaction per file
        batches.put("stat", list(hasher.fresh))
    return digest


def _prefetch(cat: Any, folder: str) -> None:
    from databacked.engine.files import LOCAL_FILES

    with _LOCK:
        if folder in _FOLDERS:
            return
        _FOLDERS.add(folder)
    try:
        with os.scandir(folder) as entries:
            paths = [e.path for _, e in zip(range(PREFETCH_LIMIT + 1), entries, strict=False)]
    except OSError:
        return
    if len(paths) > PREFETCH_LIMIT:
        return
    rows = cat.stat_cache_get(LOCAL_FILES, paths)
    for p in paths:  # files without a row are known to have none (their stamp never matches)
        _KNOWN.setdefault(p, rows.get(p, _ABSENT))


def content_hash(value: Any) -> str | None:
    """The content hash of a file-backed value, None for a plain value."""
    if isinstance(value, Resource):
        return value.content_hash()
    if isinstance(value, Artifact):
        return value.hash
    pointer = pointer_of(value)
    if pointer is not None:
        return pointer.hash
    return None


def split(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(plain parameters, file inputs by name) of a task's bound arguments."""
    plain: dict[str, Any] = {}
    files: dict[str, list[str]] = {}
    for name, value in parameters.items():
        found = _hashes(value)
        if found is None:
            plain[name] = _materialised(value)
            continue
        files[name] = [h for h, _ in found]
        extras = [e for _, e in found if e]
        if extras:
            plain[f"{name}.meta"] = extras
    return plain, files


def _hashes(value: Any) -> list[tuple[str, dict]] | None:
    digest = content_hash(value)
    if digest is not None:
        extras = value.key_extras() if isinstance(value, Resource) else {}
        return [(digest, extras)]
    if isinstance(value, list | tuple) and value:
        found = [_hashes(v) for v in value]
        if all(f is not None for f in found):
            return [pair for f in found for pair in f]  # type: ignore[union-attr]
    return None


def _materialised(value: Any) -> Any:
    """A lazy dask collection not backed by our files is keyed by its computed content."""
    if hasattr(value, "__dask_graph__") and hasattr(value, "compute"):
        return value.compute()
    return value


def key_for(task: Any, parameters: Mapping[str, Any], extra: Mapping[str, Any] = ()) -> str:
    """The call key of ``task`` applied to ``parameters`` (``extra``: target, format...)."""
    plain, files = split(parameters)
    plain.update(extra)
    name = getattr(task, "name", "task")
    return call_key(task_fingerprint(task), params_hash(name, plain), files)


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str:
    """``cache_key_fn`` for Prefect tasks (CPR's name): databacked's call key."""
    return key_for(context.task, arguments, task_extras(context.task, arguments))


def task_extras(task: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Options of our ``task`` decorator that decide what is written (store, target, format)."""
    extras = getattr(getattr(task, "fn", None), "__databacked_extras__", None)
    return dict(extras(arguments)) if extras is not None else {}


__all__ = ["content_hash", "file_hash", "key_for", "split", "task_fingerprint", "task_input_hash"]
