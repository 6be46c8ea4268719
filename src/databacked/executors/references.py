"""References on the wire: ``module:qualname`` for a function or class, and back.

A reader resolves references through a resolver of its choice: a worker through its gate
(``databacked.worker.gate``), a driver reading answers through :func:`resolve_loaded`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from databacked.errors import WireError


def reference(obj: Any) -> str:
    """``module:qualname`` of a function or class that a worker can import, or WireError."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    what = getattr(obj, "__name__", repr(obj))
    if not module or not qualname or "<" in qualname:
        raise WireError(
            f"{what!r} is a lambda, closure or local definition and cannot travel to a worker "
            "by reference; define it at the top level of an importable module."
        )
    if module == "__main__":
        raise WireError(
            f"{what!r} is defined in __main__ (a script or notebook) and cannot travel to a "
            "worker by reference; move it into an importable module."
        )
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not obj and getattr(found, "fn", None) is not obj:
        raise WireError(
            f"{what!r} is not reachable as {module}:{qualname} (was its module loaded from a "
            "file path?); put it in a module the worker can import."
        )
    return f"{module}:{qualname}"


def split_reference(ref: Any) -> tuple[str, list[str]]:
    """(module, qualname parts) of ``module:qualname``; WireError unless plain identifiers."""
    module_name, sep, qualname = str(ref).partition(":")
    parts = qualname.split(".")
    names = [*module_name.split("."), *parts]
    if not isinstance(ref, str) or not sep or not all(n.isidentifier() for n in names):
        raise WireError(f"{ref!r} is not a reference of the form 'module:qualname'.")
    if any(p.startswith("__") for p in parts):
        raise WireError(f"{ref!r} names a dunder attribute; references name plain objects.")
    return module_name, parts


def resolve(ref: str) -> Any:
    """The object named by ``module:qualname``; ModuleNotFoundError/AttributeError if absent."""
    module_name, parts = split_reference(ref)
    obj: Any = importlib.import_module(module_name)
    for part in parts:
        obj = getattr(obj, part)
    return obj


def resolve_loaded(ref: str, kind: str = "ref") -> Any:
    """Like :func:`resolve` but only from modules already imported (or databacked's own):
    what a driver uses on answers, so a worker's answer cannot make it import anything else."""
    module_name, parts = split_reference(ref)
    obj: Any = sys.modules.get(module_name)
    if obj is None and (module_name == "databacked" or module_name.startswith("databacked.")):
        obj = importlib.import_module(module_name)
    if obj is None:
        raise WireError(f"{ref!r} names the module {module_name!r}, which is not loaded here.")
    for part in parts:
        obj = getattr(obj, part)
    return obj


Resolver = Callable[[str, str], Any]
"""``(reference, kind)`` -> object, kind being ``"ref"`` or ``"dataclass"``; raises to refuse."""


__all__ = ["Resolver", "reference", "resolve", "resolve_loaded", "split_reference"]
