"""Where the analysis script runs: orchestrator, notebook or terminal, and how to re-run it.

The same script serves all three: an orchestrator says which step it wants through
``ANALYSISRUN_METHOD`` (analysisrun's later ``ANALYSISRUN_MODE`` is read too), a notebook is
recognised by its IPython kernel (``PSEUDO_NBENV=1`` pretends to be one), anything else is
a local run that re-starts this very script once per lane.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

METHOD = "ANALYSISRUN_METHOD"
MODE = "ANALYSISRUN_MODE"
METHODS = ("analyze", "postprocess", "analyzeseq", "showschema")
_MODE_ALIASES = {"analyze": "analyze", "postprocess": "postprocess", "analyzeseq": "analyzeseq",
                 "showschema": "showschema"}  # fmt: skip


def method_from_env() -> str | None:
    """The method an orchestrator asked for (raw value, checked by the caller), or None."""
    value = os.environ.get(METHOD) or os.environ.get(MODE)
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    return _MODE_ALIASES.get(value, value)


def is_notebook() -> bool:
    """True inside a Jupyter kernel, or when ``PSEUDO_NBENV`` (or ANALYSISRUN_INTERACTIVITY=
    notebook) says so; a plain IPython terminal is not a notebook."""
    if os.environ.get("PSEUDO_NBENV", "").strip() not in ("", "0"):
        return True
    forced = os.environ.get("ANALYSISRUN_INTERACTIVITY", "").strip().lower()
    if forced in ("notebook", "terminal"):
        return forced == "notebook"
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


_RUNNERS = ("cProfile", "profile", "pdb", "trace", "runpy", "coverage", "pyinstrument")
"""Modules that run a script given to them: the script, not the runner, is re-run."""


def script_command() -> list[str] | None:
    """The arguments that start this script again (``python script.py`` or ``-m pkg``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or ""
    if name.endswith(".__main__"):
        name = name[: -len(".__main__")]
    if name and name.split(".")[0] not in _RUNNERS:
        return [sys.executable, "-m", name]
    candidates = [sys.argv[0] if sys.argv else "", getattr(main, "__file__", None) or ""]
    for candidate in candidates:
        if candidate and candidate != "-c" and Path(candidate).is_file():
            return [sys.executable, str(Path(candidate).resolve())]
    return None


__all__ = ["METHOD", "MODE", "is_notebook", "method_from_env", "script_command"]
