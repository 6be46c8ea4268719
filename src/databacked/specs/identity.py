"""A transform's identity (driver side): its function and the fingerprint in its datums' keys.

A ``python:`` transform's fingerprint is its code's (``engine.keys``): the normalised source
of the function and of the project functions it calls. Computing it means importing the
transform, and with it every package the transform imports (numpy, torch, cellpose...):
often most of a run that has nothing to do. So the catalog keeps each fingerprint with the
stamps (size, mtime, inode) of the source files that decide it (``code_fingerprints``). While
those files are as they were, a run reuses the fingerprint and imports the transform only if
a datum has to run. A constant computed when its module runs (``CONFIG = json.load(...)``)
is not decided by a source file: such a transform is imported on every run, as before.

A ``cmd:`` transform's fingerprint is its command, stdin and the hashes of the project's
scripts it names. ``transform.version`` replaces the code part; ``env``, ``output`` and
``accept_return_code`` always count.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import databacked
from databacked import hashing
from databacked.engine import keys
from databacked.engine.keys import fingerprint_and_sources, is_project_local
from databacked.errors import SpecError
from databacked.hashing import RACY_NS, combine, hash_file, local_stamp

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.specs.model import Spec


def transform_identity(
    spec: Spec, project: Path, catalog: Catalog | None = None
) -> tuple[Callable[..., Any] | None, str]:
    """The transform's function and its fingerprint (code, or command + scripts).

    With a ``catalog``, a ``python:`` transform whose source files are unchanged since its
    fingerprint was kept there is not imported: the function is None, and
    :func:`load_transform` imports it when a datum has to run.
    """
    t = spec.transform
    extra = json.dumps(
        {"env": t.env, "output": spec.output.model_dump(), "ok": t.accept_return_code},
        sort_keys=True,
    )
    if t.python is not None:
        fn, base = _python_identity(spec, project, catalog)
        return fn, combine("spec-python", base, extra)
    if t.image:  # a new image is new code: its datums run again
        from databacked.specs.containers import for_spec

        extra += "\0image:" + for_spec(spec).digest  # type: ignore[union-attr]
    if t.version is not None:
        return None, combine("spec-cmd", f"{spec.pipeline}@{t.version}", extra)
    scripts = [hash_file(project / arg) for arg in (t.cmd or []) if _is_script(project, arg)]
    command = json.dumps({"cmd": t.cmd, "stdin": t.stdin}, sort_keys=True)
    return None, combine("spec-cmd", command, extra, *scripts)


def load_transform(spec: Spec) -> Callable[..., Any]:
    """Import a ``python:`` transform (again, if its project module's file changed since)."""
    ref = spec.transform.python or ""
    module_name, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), name)
        if is_project_local(fn):
            fn = getattr(_fresh_module(module_name), name)
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise SpecError(
            f"{spec.origin}: cannot import transform.python '{ref}' ({exc}); make the module "
            "importable (install it or keep it in the project folder)."
        ) from exc
    fn = getattr(fn, "fn", fn)
    if is_project_local(fn) and fn.__module__ != "__main__":
        import cloudpickle

        # Worker processes may not have the project on sys.path: ship the module's code.
        cloudpickle.register_pickle_by_value(sys.modules[fn.__module__])
    return fn


def _python_identity(
    spec: Spec, project: Path, catalog: Catalog | None
) -> tuple[Callable[..., Any] | None, str]:
    ref = _code_ref(spec, project)
    kept = catalog.code_fingerprint_get(ref) if catalog is not None else None
    if kept is not None and all(_stamp(path) == stamp for path, stamp in kept[1]):
        return None, kept[0]
    fn = load_transform(spec)
    base, files = fingerprint_and_sources(fn, spec.pipeline, spec.transform.version)
    if catalog is not None and files is not None:
        # how databacked hashes code counts too: an upgrade or an edit of it asks again
        files = sorted({*files, *(str(Path(m.__file__).resolve()) for m in (keys, hashing))})
        stamps = [(path, stamp) for path in files if (stamp := _stamp(path)) is not None]
        if len(stamps) == len(files):  # else (a file too recent to trust): ask next run
            catalog.code_fingerprint_put(ref, base, stamps)
    return fn, base


def _code_ref(spec: Spec, project: Path) -> str:
    """What else decides a transform's code fingerprint: which interpreter and packages
    import it, from which project, and how this version of databacked hashes code."""
    t = spec.transform
    return combine(
        "transform-code",
        databacked.__version__,
        sys.version,
        sys.prefix,
        str(project.resolve()),
        spec.pipeline,
        t.python or "",
        t.version or "",
    )


def _stamp(path: str) -> str | None:
    """A source file's stamp; None when it is missing or too recent to trust (``RACY_NS``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time_ns() - st.st_mtime_ns <= RACY_NS:
        return None
    return local_stamp(st)


def _is_script(project: Path, arg: str) -> bool:
    # Only relative paths inside the project count: a command's own scripts, not /usr/bin.
    return "{" not in arg and not os.path.isabs(arg) and (project / arg).is_file()


_LOADED: dict[str, int] = {}
"""Project module -> mtime_ns of its file when imported (a watcher's later runs reload it)."""


def _fresh_module(module_name: str) -> types.ModuleType:
    """Import a module; a project module whose file changed since is reloaded, so a watcher
    that runs for hours sees the user's edits (and their new fingerprint)."""
    module = sys.modules[module_name]
    file = getattr(module, "__file__", None)
    if file is None:
        return module
    try:
        mtime = os.stat(file).st_mtime_ns
    except OSError:
        return module
    if _LOADED.setdefault(module_name, mtime) != mtime:
        module = importlib.reload(module)
        _LOADED[module_name] = mtime
    return module


__all__ = ["load_transform", "transform_identity"]
