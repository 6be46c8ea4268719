"""What a run records about where it ran: git state, versions, host, configuration."""

from __future__ import annotations

import getpass
import importlib.util
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from databacked.config import redact

_ALWAYS = ("databacked", "numpy", "pandas")


def git_state(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the project, or (None, None) outside git or without git."""
    cwd = str(folder or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def package_versions(modules: Iterable[str] = ()) -> dict[str, str]:
    """Versions of databacked, numpy, pandas and the top packages of the step modules."""
    names = {*_ALWAYS, *(m.split(".")[0] for m in modules if m and m != "__main__")}
    out: dict[str, str] = {}
    for name in sorted(names):
        # An imported package usually says its version; asking importlib.metadata costs
        # ~25 ms a run (importing it, then scanning every sys.path entry).
        version = getattr(sys.modules.get(name), "__version__", None)
        if not isinstance(version, str):
            version = _installed_version(name)
        if version:
            out[name] = version
    return out


def _installed_version(name: str) -> str | None:
    """The version in the name of the ``NAME-VERSION.dist-info`` folder installed beside
    the module, or on ``sys.path`` (an editable install), found without importing it; None
    where no distribution of that name is installed, as ``importlib.metadata`` has it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not os.path.isabs(spec.origin):
        return None  # built in, frozen or a namespace package
    where = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:  # a package: its folder's parent
        where = os.path.dirname(where)
    prefix = name.lower().replace("-", "_") + "-"
    for folder in dict.fromkeys([where, *sys.path]):
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".dist-info") and entry.lower().startswith(prefix):
                return entry[len(prefix) : -len(".dist-info")]
    return None


def run_info(
    pipeline: str, modules: Iterable[str], config: dict[str, Any], *, folder: Path | None = None
) -> dict[str, Any]:
    """The ``info`` dict for ``Catalog.start_run`` (git state of ``folder``, else the cwd)."""
    commit, dirty = git_state(folder)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {
        "pipeline": pipeline,
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": package_versions(modules),
        "config": redact(config),
    }


__all__ = ["git_state", "package_versions", "run_info"]
