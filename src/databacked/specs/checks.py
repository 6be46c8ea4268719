"""What ``spec check`` verifies beyond the YAML: that the transform a spec names can run.

A ``python:`` transform is imported (from the project folder, as a run would) and its
signature checked against the keywords a datum offers; a ``cmd:`` transform's executable is
looked up on PATH, a warning only, since workers on other machines may have it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
from pathlib import Path

from databacked.errors import SpecError
from databacked.specs.globs import compile_glob
from databacked.specs.model import Spec

OFFERED = ("files", "input_dir", "output_dir", "datum", "group", "attributes")
"""Keywords every python transform may ask for, besides the named captures."""


def check_transform(spec: Spec, project: Path) -> list[str]:
    """Raise SpecError when the transform cannot run; return warnings (an absent command)."""
    if spec.transform.python is not None:
        _check_python(spec, project)
        return []
    return _check_cmd(spec, project)


def captures(spec: Spec) -> set[str]:
    """Names of the named captures of every glob of the spec (datum attributes)."""
    names: set[str] = set()
    for pfs in spec.input.pfs_inputs():
        names.update(n for n in compile_glob(pfs.glob, pfs.names).names if n)
    return names


def _check_python(spec: Spec, project: Path) -> None:
    ref = spec.transform.python or ""
    module_name, _, name = ref.partition(":")
    if project.is_dir() and str(project) not in sys.path:
        sys.path.append(str(project))  # as a run does: appended, never shadowing
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's to fix: say which
        raise SpecError(
            f"{spec.origin}: cannot import module '{module_name}' of transform.python '{ref}' "
            f"({type(exc).__name__}: {exc}); keep it in the project folder {project} or "
            "install it."
        ) from exc
    fn = getattr(module, name, None)
    if fn is None:
        import difflib

        close = difflib.get_close_matches(name, [n for n in dir(module) if not n.startswith("_")])
        hint = f" (did you mean '{module_name}:{close[0]}'?)" if close else ""
        raise SpecError(f"{spec.origin}: module '{module_name}' has no function '{name}'{hint}.")
    fn = getattr(fn, "fn", fn)
    if not callable(fn):
        raise SpecError(f"{spec.origin}: transform.python '{ref}' is not a function.")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    offered = set(OFFERED) | captures(spec)
    missing = [
        p.name
        for p in params.values()
        if p.name not in offered
        and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
    ]
    if missing:
        raise SpecError(
            f"{spec.origin}: transform '{ref}' needs {', '.join(repr(m) for m in missing)}, "
            f"which a datum does not give; it may ask for {', '.join(sorted(offered))} "
            "(name a capture in the glob, e.g. '(?P<plate>*)', to pass it)."
        )


def _check_cmd(spec: Spec, project: Path) -> list[str]:
    command = (spec.transform.cmd or [""])[0]
    if not command or "{" in command:
        return []
    if os.sep in command or "/" in command:
        path = Path(command) if Path(command).is_absolute() else project / command
        found = path.is_file() and os.access(path, os.X_OK)
    else:
        found = shutil.which(command) is not None
    if found:
        return []
    return [
        f"{spec.origin}: the command '{command}' is not on this machine's PATH; it must be "
        "where the datums run (install it, or run on workers that have it)."
    ]


__all__ = ["OFFERED", "captures", "check_transform"]
