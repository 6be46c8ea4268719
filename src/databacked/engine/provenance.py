"""What a run records about where it ran: git state, versions, host, configuration."""

from __future__ import annotations

import getpass
import importlib.metadata
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
        # An imported package usually says its version; asking importlib.metadata scans
        # every sys.path entry (tens of ms a name, on every run).
        version = getattr(sys.modules.get(name), "__version__", None)
        if isinstance(version, str):
            out[name] = version
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


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
