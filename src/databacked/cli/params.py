"""``--param NAME=VALUE``: the text converted by the pipeline's own annotation of NAME.

A shell hands over text; the pipeline says what it wants. ``dataset: pd.DataFrame`` reads a
CSV, Parquet or Excel file; ``Path``, ``int``, ``float``, ``bool``, ``str``, ``list[...]``,
``dict`` and ``X | None`` convert as their names say; an unannotated parameter gets JSON
when the text parses as JSON, else the text. What cannot be converted is one sentence.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from databacked.errors import ConfigError

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"none", "null", ""}
_TABLES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".xlsx": "excel", ".xls": "excel", ".json": "json"}  # fmt: skip


class _Unconvertible(ValueError):
    """The text does not fit the annotation; the message completes a sentence."""


def annotations(fn: Any) -> dict[str, Any]:
    """Parameter annotations, resolved where possible (``from __future__`` strings too)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation naming something not importable: use what is written
        return dict(getattr(fn, "__annotations__", {}) or {})


def convert(name: str, raw: str, annotation: Any, reference: str) -> Any:
    """The value of ``--param name=raw`` for a parameter annotated ``annotation``."""
    try:
        return _convert(raw, annotation)
    except _Unconvertible as exc:
        raise ConfigError(
            f"--param {name}={raw} cannot be used: the pipeline {reference} expects "
            f"{_describe(annotation)} for {name!r}, and {exc}."
        ) from None


def _convert(raw: str, annotation: Any) -> Any:
    if annotation is Any or annotation is None or annotation is typing.Any:
        return _json_or_text(raw)
    if isinstance(annotation, str):
        return _by_name(raw, annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) < len(args) and raw.strip().lower() in _NONE:
            return None
        errors = []
        for option in options:
            try:
                return _convert(raw, option)
            except _Unconvertible as exc:
                errors.append(str(exc))
        raise _Unconvertible(errors[0] if errors else "it is not one of those")
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        return _sequence(raw, origin or annotation, args)
    if origin is dict or annotation is dict:
        value = _json(raw)
        if not isinstance(value, dict):
            raise _Unconvertible(f"{raw!r} is not a JSON object such as '{{\"a\": 1}}'")
        return value
    if isinstance(annotation, type):
        return _by_type(raw, annotation)
    return _json_or_text(raw)


def _by_type(raw: str, cls: type) -> Any:
    if cls is bool:
        return _bool(raw)
    if cls is int:
        try:
            return int(raw)
        except ValueError:
            raise _Unconvertible(f"{raw!r} is not a whole number") from None
    if cls is float:
        try:
            return float(raw)
        except ValueError:
            raise _Unconvertible(f"{raw!r} is not a number") from None
    if cls is str:
        return raw
    if issubclass(cls, Path):
        return cls(raw)
    if cls.__name__ == "File":  # db.File: an input file, kept as its path
        return cls(raw)
    if cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas"):
        return _table(raw)
    return _json_or_text(raw)


def _by_name(raw: str, name: str) -> Any:
    """Annotations that stayed strings (a name the module did not import at run time)."""
    last = name.strip().split(".")[-1]
    simple = {"int": int, "float": float, "str": str, "bool": bool, "Path": Path}
    if last in simple:
        return _by_type(raw, simple[last])
    if last == "DataFrame":
        return _table(raw)
    if last == "File":
        return raw
    return _json_or_text(raw)


def _bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Unconvertible(f"{raw!r} is not true or false")


def _sequence(raw: str, kind: Any, args: tuple[Any, ...]) -> Any:
    text = raw.strip()
    if text.startswith("["):
        items = _json(text)
        if not isinstance(items, list):
            raise _Unconvertible(f"{raw!r} is not a JSON list")
        items = [i if isinstance(i, str) else json.dumps(i) for i in items]
    else:
        items = [part.strip() for part in text.split(",") if part.strip()]
    item_type = args[0] if args and args[0] is not Ellipsis else Any
    values = [_convert(item, item_type) for item in items]
    return kind(values) if kind in (tuple, set, frozenset) else values


def _table(raw: str) -> Any:
    import pandas as pd

    path = Path(raw).expanduser()
    kind = _TABLES.get(path.suffix.lower())
    if kind is None:
        raise _Unconvertible(
            f"{raw!r} is not a table file databacked reads (.csv, .tsv, .parquet, .xlsx, .json)"
        )
    if not path.is_file():
        raise _Unconvertible(f"there is no file {str(path)!r} (relative to {Path.cwd()})")
    try:
        if kind == "csv":
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "json":
            return pd.read_json(path)
        return pd.read_excel(path)
    except ImportError as exc:
        raise _Unconvertible(f"reading {raw!r} needs {exc.name or 'a package'} installed") from None
    except (ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _Unconvertible(f"{raw!r} could not be read as a table ({first})") from None


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise _Unconvertible(f"{raw!r} is not valid JSON") from None


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _describe(annotation: Any) -> str:
    if isinstance(annotation, type):
        name = annotation.__name__
        if name == "DataFrame":
            return "a DataFrame (give a CSV, Parquet or Excel file)"
        article = "an" if name[:1].lower() in "aeiou" else "a"
        return f"{article} {name}"
    return f"a {annotation}".replace("typing.", "")


__all__ = ["annotations", "convert"]
