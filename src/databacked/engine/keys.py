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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databacked.errors import UnhashableValueError
from databacked.hashing import SCHEME, combine, hash_bytes, hash_value


def fingerprint(fn: Any, name: str, version: str | None) -> str:
    """``name@version`` when a version is given, else ``name@<code hash>``."""
    if version is not None:
        return f"{name}@{version}"
    return f"{name}@{_code_hash(fn, set())[:16]}"


def fingerprint_and_sources(
    fn: Any, name: str, version: str | None
) -> tuple[str, list[str] | None]:
    """The fingerprint, and the source files that alone decide it (None when they do not).

    The files are those whose code the hash read. They decide the fingerprint unless a
    constant it includes was computed when the module ran (``CONFIG = json.load(...)``) or
    came from a closure, or some code had no source: then only importing tells, and the
    answer is None. A caller may keep the fingerprint for as long as those files are as
    they were (``specs.identity`` does, to skip importing a transform's packages).
    """
    if version is not None:
        return f"{name}@{version}", []
    sources = _Sources()
    digest = _code_hash(fn, set(), sources)
    return f"{name}@{digest[:16]}", sorted(sources.files) if sources.exact else None


@dataclass
class _Sources:
    """What a code hash read: its source files, and whether they fix every part of it."""

    files: set[str] = field(default_factory=set)
    exact: bool = True
    literals: dict[str, dict[str, list[ast.expr]]] = field(default_factory=dict)
    """Source file -> module-level name -> the values assigned to it there."""

    def add(self, obj: Any) -> None:
        try:
            file = inspect.getsourcefile(obj)
        except TypeError:
            file = None
        if file is None or getattr(obj, "__module__", None) == "__main__":
            self.exact = False
        else:
            self.files.add(str(Path(file).resolve()))

    def constant(self, user: Any, name: str, value: Any) -> bool:
        """Whether a source file decides the constant ``name`` that ``user``'s code reads:
        ``name = <literal>`` in a project module, or any value of an installed package
        (whose files change when it is upgraded)."""
        head, _, last = name.rpartition(".")
        if not head:
            if name in getattr(getattr(user, "__code__", None), "co_freevars", ()):
                return False  # a closure's cell: set at run time
            return self._literal(
                sys.modules.get(getattr(user, "__module__", "") or ""), name, value
            )
        owner = _namespace(user).get(head.split(".")[0])
        for part in head.split(".")[1:]:
            owner = getattr(owner, part, None)
        if not isinstance(owner, types.ModuleType):
            return False
        if _is_local_module(owner):
            return self._literal(owner, last, value)
        file = getattr(owner, "__file__", None)
        if file:
            self.files.add(str(Path(file).resolve()))
        return bool(file)

    def _literal(self, module: types.ModuleType | None, name: str, value: Any) -> bool:
        # the one assignment `name = <literal>` in the module's file, giving this value
        try:
            file = inspect.getsourcefile(module) if module is not None else None
        except TypeError:
            file = None
        if file is None:
            return False
        if file not in self.literals:
            try:
                tree = ast.parse(Path(file).read_bytes())
            except (OSError, SyntaxError, ValueError):
                return False
            assigned: dict[str, list[ast.expr]] = {}
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)  # type: ignore[arg-type]
            self.literals[file] = assigned
            self.files.add(str(Path(file).resolve()))
        values = self.literals[file].get(name, [])
        if len(values) != 1:
            return False
        try:
            literal = ast.literal_eval(values[0])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return type(literal) is type(value) and literal == value


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
    if not module_name:
        return False
    module = sys.modules.get(module_name)
    return module is not None and _is_local_module(module)


def _is_local_module(module: types.ModuleType) -> bool:
    module_name = module.__name__
    if module_name.split(".")[0] in ("databacked", "builtins"):
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


def _code_hash(obj: Any, seen: set[int], sources: _Sources | None = None) -> str:
    # ``sources``, when given, learns which files decided the hash (only specs ask)
    obj = _unwrap(obj)
    seen.add(id(obj))
    tree = _normalised_ast(obj)
    if tree is None:
        if sources is not None:
            sources.exact = False
        return _bytecode_hash(obj)
    if sources is not None:
        sources.add(obj)
    parts = [ast.dump(tree, include_attributes=False)]
    for ref_name, ref in _references(obj, tree):
        target = _unwrap(ref)
        if id(target) in seen:
            parts.append(f"ref:{ref_name}")
            continue
        if isinstance(target, types.FunctionType | type) and is_project_local(target):
            parts.append(f"ref:{ref_name}:{_code_hash(target, seen, sources)}")
        elif isinstance(target, _CONSTANTS):
            # module-level settings (THRESHOLD = 0.5) are part of what the code computes
            if (
                sources is not None
                and sources.exact
                and not sources.constant(obj, ref_name, target)
            ):
                sources.exact = False
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


def _namespace(obj: Any) -> dict[str, Any]:
    """The names a function (globals, closure cells) or a class (its module) can see."""
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        return dict(vars(module)) if module else {}
    namespace = dict(getattr(obj, "__globals__", {}))
    closure = getattr(obj, "__closure__", None) or ()
    for cell_name, cell in zip(obj.__code__.co_freevars, closure, strict=False):
        try:
            namespace[cell_name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return namespace


def _references(obj: Any, tree: ast.AST) -> list[tuple[str, Any]]:
    """Globals, closure names and module attributes the code refers to, resolved."""
    namespace = _namespace(obj)
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


__all__ = ["call_key", "fingerprint", "fingerprint_and_sources", "is_project_local", "params_hash"]
