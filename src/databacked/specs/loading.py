"""Reading ``pipelines/*.yml|*.yaml|*.json`` into Specs, with errors that name file and line.

YAML is composed into nodes first, so a pydantic error location (``input.pfs.glb``) can be
walked back to the node it came from and reported as one sentence::

    pipelines/measure.yml, line 7: unknown field 'glb' in input.pfs (did you mean 'glob'?)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from databacked.errors import FormatError, SpecError
from databacked.formats.registry import get_format
from databacked.specs.globs import check_references, compile_glob
from databacked.specs.model import Input, Spec

SPEC_SUFFIXES = (".yml", ".yaml", ".json")
Loc = tuple[str | int, ...]


def spec_files(path: str | os.PathLike[str]) -> list[Path]:
    """The spec files at ``path``: the file itself, or a folder's (or its ``pipelines/``'s)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise SpecError(f"no spec file or folder at {_shown(p)}; pass pipelines/ or a .yml file.")
    files = sorted(f for f in p.iterdir() if f.suffix in SPEC_SUFFIXES and f.is_file())
    if not files and (p / "pipelines").is_dir():
        return spec_files(p / "pipelines")
    return files


def project_folder(path: str | os.PathLike[str]) -> Path:
    """The project of a specs file or folder, whatever the specs folder is called: where
    commands run and transform modules import from.

    A folder holding ``pipelines/`` is the project; a folder of spec files (or a spec
    file's folder) is the project when it is the working folder or holds Python modules or
    a ``databacked.toml``/``pyproject.toml``, else its parent is.
    """
    p = Path(path)
    base = (p.parent if p.is_file() else p).resolve()
    if not base.is_dir():
        return base.parent
    has_specs = any(f.suffix in SPEC_SUFFIXES and f.is_file() for f in base.iterdir())
    if not has_specs and (base / "pipelines").is_dir():
        return base
    if base.name == "pipelines":
        return base.parent
    if base == Path.cwd().resolve():
        return base
    markers = ("databacked.toml", "pyproject.toml")
    if any(f.suffix == ".py" or f.name in markers for f in base.iterdir()):
        return base
    return base.parent


def load_specs(path: str | os.PathLike[str]) -> list[Spec]:
    """Every pipeline spec in a file or folder (several YAML documents per file allowed).

    Raises SpecError (file and line in the message) for invalid YAML, unknown fields, wrong
    types, captures referenced but not captured, and pipeline names defined twice.
    """
    specs: list[Spec] = []
    seen: dict[str, Spec] = {}
    for file in spec_files(path):
        for spec in load_file(file):
            if spec.pipeline in seen:
                raise SpecError(
                    f"{spec.origin}: pipeline '{spec.pipeline}' is already defined at "
                    f"{seen[spec.pipeline].origin}; rename one of them."
                )
            seen[spec.pipeline] = spec
            specs.append(spec)
    return specs


def load_file(file: str | os.PathLike[str]) -> list[Spec]:
    """The specs in one file, each remembering its file and line."""
    shown = _shown(Path(file))
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{shown}: cannot read the spec file ({exc}); check the file.") from exc
    return [
        _validate(data, node, shown)
        for data, node in _documents(text, shown, json_file=str(file).endswith(".json"))
    ]


def load_text(text: str, source: str = "<spec>") -> list[Spec]:
    """The specs in a YAML/JSON string (for tests and the Python API)."""
    return [_validate(data, node, source) for data, node in _documents(text, source)]


def _documents(text: str, shown: str, json_file: bool = False) -> list[tuple[Any, Any]]:
    """(data, node) per non-empty document; node is None when only JSON could parse it."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        # Construct each document from its own node, so data and line marks stay paired.
        pairs = [(yaml.SafeLoader("").construct_document(n), n) for n in nodes if n is not None]
    except yaml.MarkedYAMLError as exc:
        if json_file:
            return _json_document(text, shown)
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise SpecError(
            f"{shown}{line}: invalid YAML ({exc.problem or exc.context}); fix the syntax there."
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{shown}: invalid YAML ({exc}); fix the syntax.") from exc
    return [(data, node) for data, node in pairs if data is not None]


def _json_document(text: str, shown: str) -> list[tuple[Any, Any]]:
    # JSON that PyYAML refuses (tabs): valid for json, but without line marks.
    try:
        return [(json.loads(text), None)]
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{shown}, line {exc.lineno}: invalid JSON ({exc.msg}); fix the syntax there."
        ) from exc


def _validate(data: Any, node: Any, shown: str) -> Spec:
    line0 = node.start_mark.line + 1 if node is not None else 1
    if not isinstance(data, dict):
        raise SpecError(
            f"{shown}, line {line0}: a spec document must be a mapping with pipeline, input "
            f"and transform, not {type(data).__name__}."
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        # Union members add their class name to the location; one place is one problem.
        places = {tuple(p for p in e["loc"] if not str(p)[:1].isupper()) for e in errors}
        more = len(places) - 1
        raise SpecError(_sentence(err, node, shown, line0, more)) from exc
    spec.located(shown, line0)
    problems = input_problems(spec.input, ("input",)) + _output_problems(spec)
    if problems:
        loc, msg = problems[0]
        target, where = _locate(node, loc)
        line = _line(target, line0)
        raise SpecError(f"{shown}, line {line}: {msg} (in {where or 'the spec'}).")
    return spec


def input_problems(
    inp: Input, loc: Loc = ("input",), parent: str | None = None
) -> list[tuple[Loc, str]]:
    """Rules pydantic cannot see: join/group members, their keys and the captures they use."""
    out = _misplaced(inp, loc, parent)
    if inp.pfs is not None:
        p = inp.pfs
        try:
            compiled = compile_glob(p.glob, p.names)
            for field in ("join_on", "group_by"):
                value = getattr(p, field)
                if value is not None:
                    check_references(value, compiled, field)
        except SpecError as exc:
            out.append(((*loc, "pfs", "glob"), str(exc).rstrip(".")))
        return out
    kind = inp.kind
    if kind in ("cross", "join"):
        out.extend(_name_clashes(inp, loc))
    for i, child in enumerate(inp.children):
        cloc = (*loc, kind, i)
        if kind in ("join", "group"):
            key = "join_on" if kind == "join" else "group_by"
            if child.pfs is None:
                out.append((cloc, f"the members of a {kind} must be pfs inputs (repo + glob)"))
                continue
            if getattr(child.pfs, key) is None:
                out.append((cloc, f"each member of a {kind} needs '{key}' (e.g. '$1')"))
        out.extend(input_problems(child, cloc, kind))
    return out


def _name_clashes(inp: Input, loc: Loc) -> list[tuple[Loc, str]]:
    """Members of a cross or join are laid out side by side, so their names must differ."""
    seen: dict[str, int] = {}
    for i, child in enumerate(inp.children):
        for name in {leaf.input_name for leaf in child.pfs_inputs()}:
            if name in seen:
                return [
                    (
                        (*loc, inp.kind, i),
                        f"members {seen[name]} and {i} of this {inp.kind} are both named "
                        f"'{name}'; give one of them a different 'name'",
                    )
                ]
            seen[name] = i
    return []


def _output_problems(spec: Spec) -> list[tuple[Loc, str]]:
    """An output format must be one databacked knows (built in or an installed plugin)."""
    if spec.output.format is None:
        return []
    try:
        get_format({**spec.output.options, "name": spec.output.format})
    except (FormatError, TypeError, ValueError) as exc:
        return [(("output", "format"), str(exc).rstrip("."))]
    return []


def _misplaced(child: Input, loc: Loc, parent: str | None) -> list[tuple[Loc, str]]:
    p = child.pfs
    if p is None:
        return []
    out: list[tuple[Loc, str]] = []
    here = (*loc, "pfs")
    if p.join_on is not None and parent != "join":
        out.append(((*here, "join_on"), "join_on applies only to the members of a join"))
    if p.group_by is not None and parent != "group":
        out.append(((*here, "group_by"), "group_by applies only to the members of a group"))
    if p.complete is not None and parent != "group":
        out.append(((*here, "complete"), "complete applies only to the members of a group"))
    return out


def _sentence(err: dict[str, Any], node: Any, shown: str, line0: int, more: int) -> str:
    loc: Loc = tuple(err["loc"])
    if err["type"] == "unknown_field":
        target, where = _locate(node, loc)
        field = err["ctx"]["field"]
        line = _line(_key_node(target, field), line0)
        head = f"unknown field '{field}' in {where or 'the spec'}{err['ctx']['hint']}"
    elif err["type"] == "missing":
        target, where = _locate(node, loc[:-1])
        line = _line(target, line0)
        head = f"missing field '{loc[-1]}' in {where or 'the spec'}"
    else:
        target, where = _locate(node, loc)
        line = _line(target, line0)
        msg = str(err["msg"]).removeprefix("Value error, ")
        head = f"{where}: {msg}" if where else msg
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{shown}, line {line}: {head}{tail}."


def _locate(node: Any, loc: Iterable[str | int]) -> tuple[Any, str]:
    """The YAML node at a model location, and that location as the user wrote it.

    Parts the user did not write (``pfs`` added by the shorthand, union member names) are
    skipped, so ``input.group.0.pfs.glob`` finds ``input.group[0].glob``.
    """
    shown = ""
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    shown = f"{shown}.{part}" if shown else part
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            shown = f"{shown}[{part}]"
    return node, shown


def _key_node(node: Any, field: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for key, _value in node.value:
            if key.value == field:
                return key
    return node


def _line(node: Any, default: int) -> int:
    return node.start_mark.line + 1 if node is not None else default


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        rel = Path(os.path.relpath(path)).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


__all__ = [
    "input_problems",
    "load_file",
    "load_specs",
    "load_text",
    "project_folder",
    "spec_files",
]
