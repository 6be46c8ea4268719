"""Step fingerprints and call keys (DESIGN section 3).

key = blake3(SCHEME | fingerprint | canonical params hash | input content hashes by name).
A fingerprint without ``version=`` hashes the normalised AST of the function and,
transitively, of the project-local functions and classes it refers to, plus the values of
module-level constants it reads: editing a helper or a constant re-runs its users, a comment
or a reformat re-runs nothing.
"""

from __future__ import annotations

import ast
import functools
import inspect
import site
import sys
import sysconfig
import textwrap
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from databacked.errors import UnhashableValueError
from databacked.hashing import SCHEME, combine, hash_bytes, hash_value


def fingerprint(fn: Any, name: str, version: str | None) -> str:
    """``name@version`` when a version is given, else ``name@<code hash>``."""
    if version is not None:
        return f"{name}@{version}"
    return f"{name}@{_code_hash(fn, set())[:16]}"


def call_key(fingerprint: str, params_hash: str, inputs: Mapping[str, Sequence[str]]) -> str:
    """The cache key of one call."""
    parts = [f"{name}\0{','.join(hashes)}" for name, hashes in sorted(inputs.items())]
    return combine(SCHEME, fingerprint, params_hash, *parts)


def params_hash(step_name: str, params: Mapping[str, Any]) -> str:
    """Canonical hash of parameter values; an unhashable one names the parameter."""
    parts = []
    for name in sorted(params):
        try:
            parts.append(f"{name}={hash_value(params[name])}")
        except (UnhashableValueError, TypeError) as exc:
            raise UnhashableValueError(
                f"Parameter {name!r} of step {step_name!r} has a value of type "
                f"{type(params[name]).__name__} that databacked cannot hash; pass JSON-like "
                "data, arrays, dataframes, dataclasses or paths, or mark the step cache=False."
            ) from exc
    return combine("params", *parts)


# -- fingerprints ---------------------------------------------------------------------------


@functools.cache
def _excluded_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages())
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_path(key))
    return tuple(str(Path(r).resolve()) for r in roots if r)


def is_project_local(obj: Any) -> bool:
    """True for functions/classes defined in the user's own modules (not installed ones)."""
    module_name = getattr(obj, "__module__", None)
    if not module_name or module_name.split(".")[0] in ("databacked", "builtins"):
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    file = getattr(module, "__file__", None)
    if file is None:
        # notebooks and interactive sessions define functions in __main__ without a file
        return module_name == "__main__"
    path = str(Path(file).resolve())
    return not any(path.startswith(root + "/") or path == root for root in _excluded_roots())


def _unwrap(obj: Any) -> Any:
    from databacked.engine.step import Step

    if isinstance(obj, Step):
        return obj.fn
    return getattr(obj, "__wrapped__", obj) if not isinstance(obj, type) else obj


def _code_hash(obj: Any, seen: set[int]) -> str:
    obj = _unwrap(obj)
    seen.add(id(obj))
    tree = _normalised_ast(obj)
    if tree is None:
        return _bytecode_hash(obj)
    parts = [ast.dump(tree, include_attributes=False)]
    for ref_name, ref in _references(obj, tree):
        target = _unwrap(ref)
        if id(target) in seen:
            parts.append(f"ref:{ref_name}")
            continue
        if isinstance(target, types.FunctionType | type) and is_project_local(target):
            parts.append(f"ref:{ref_name}:{_code_hash(target, seen)}")
        elif isinstance(target, _CONSTANTS):
            # module-level settings (THRESHOLD = 0.5) are part of what the code computes
            try:
                parts.append(f"const:{ref_name}:{hash_value(target)}")
            except (UnhashableValueError, TypeError):
                parts.append(f"const:{ref_name}:?")
    return combine("code", *parts)


_CONSTANTS = (int, float, complex, str, bytes, bool, tuple, frozenset, list, dict, type(None))


def _normalised_ast(obj: Any) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # decorators (step options) are not code; targets and formats are keyed apart
            if node is tree.body[0]:
                node.decorator_list = []
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _bytecode_hash(obj: Any) -> str:
    code = getattr(obj, "__code__", None)
    name = getattr(obj, "__qualname__", repr(obj))
    warnings.warn(
        f"The source of {name} is not available, so its fingerprint uses its bytecode, "
        "which changes between Python versions; give the step version= to pin it.",
        stacklevel=4,
    )
    if code is None:
        return combine("opaque", name)
    return combine("bytecode", hash_bytes(code.co_code), repr(code.co_consts))


def _references(obj: Any, tree: ast.AST) -> list[tuple[str, Any]]:
    """Globals, closure names and module attributes the code refers to, resolved."""
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        namespace: dict[str, Any] = dict(vars(module)) if module else {}
    else:
        namespace = dict(getattr(obj, "__globals__", {}))
        closure = getattr(obj, "__closure__", None) or ()
        for cell_name, cell in zip(obj.__code__.co_freevars, closure, strict=False):
            try:
                namespace[cell_name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in namespace:
            found.setdefault(node.id, namespace[node.id])
        elif isinstance(node, ast.Attribute):
            chain = _attribute_chain(node)
            if (
                chain
                and chain[0] in namespace
                and isinstance(namespace[chain[0]], types.ModuleType)
            ):
                value: Any = namespace[chain[0]]
                for part in chain[1:]:
                    value = getattr(value, part, None)
                    if value is None or not isinstance(value, types.ModuleType):
                        break
                if value is not None:
                    found.setdefault(".".join(chain), value)
    return sorted(found.items())


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    parts: list[str] = [node.attr]
    current: ast.expr = node.value
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    return parts[::-1]


__all__ = ["call_key", "fingerprint", "is_project_local", "params_hash"]
