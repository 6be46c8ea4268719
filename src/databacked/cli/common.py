"""What every command shares: options, settings, opening the store and catalog, loading pipelines.

Heavy modules (the engine, SQLAlchemy, pandas) are imported inside the functions, so
``databacked --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from databacked.errors import ConfigError

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.config import Settings
    from databacked.store import Store

console = Console()
err_console = Console(stderr=True)

PIPED_WIDTH = 200


def wide_when_piped() -> None:
    """Piped output (grep, files, tests) gets wide tables instead of rich's 80 columns."""
    for con in (console, err_console):
        con.width = None  # type: ignore[assignment]  # re-detect for this invocation
        if not con.is_terminal and "COLUMNS" not in os.environ:
            con.width = PIPED_WIDTH


StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL or folder (default: settings, ./data).")
]
CatalogOption = Annotated[
    str | None,
    typer.Option("--catalog", help="Catalog URL (default: sqlite:///.databacked/catalog.db)."),
]


def settings(**overrides: Any) -> Settings:
    """Settings from databacked.toml, pyproject, DATABACKED_* and the given flags."""
    from databacked.config import load_settings

    return load_settings(**overrides)


def open_store(config: Settings) -> Store:
    from databacked.store import Store

    return Store(
        config.store, storage_options=config.storage_options or None, durability=config.durability
    )


@contextmanager
def open_catalog(config: Settings, *, create: bool = True) -> Iterator[Catalog]:
    """The configured catalog; ``create=False`` refuses to make a new SQLite file (read-only
    commands run in the wrong folder should say so, not leave an empty catalog behind)."""
    from databacked.catalog import Catalog

    if not create:
        _require_existing_sqlite(config.catalog)
    catalog = Catalog.open(config.catalog)
    try:
        yield catalog
    finally:
        catalog.close()


def _require_existing_sqlite(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Catalog.open reports a malformed URL in its own words
    database = parsed.database
    is_file = parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
    if is_file and not Path(str(database)).exists():
        raise ConfigError(
            f"No catalog at {database} yet: run a pipeline here first, or point --catalog "
            "(or DATABACKED_CATALOG) at an existing one."
        )


def load_pipeline(reference: str) -> Any:
    """The object named by ``FILE.py:NAME`` or ``package.module:NAME``."""
    if ":" not in reference:
        raise ConfigError(
            f"Cannot read the pipeline reference {reference!r}: write FILE.py:PIPELINE or "
            "package.module:PIPELINE, e.g. pipelines.py:cells."
        )
    where, _, name = reference.rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(
            f"Cannot read the pipeline reference {reference!r}: write FILE.py:PIPELINE with a "
            "Python name after the colon."
        )
    module = _load_file(Path(where)) if _looks_like_file(where) else _load_module(where)
    try:
        return getattr(module, name)
    except AttributeError:
        found = sorted(n for n, v in vars(module).items() if _is_pipeline(v))
        hint = f"; pipelines found there: {', '.join(found)}" if found else ""
        close = did_you_mean(name, found or [n for n in vars(module) if not n.startswith("_")])
        raise ConfigError(f"{where} defines no {name!r}{close}{hint}.") from None


def _looks_like_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"The pipeline file {str(path)!r} does not exist; check the path.")
    path = path.resolve()
    # The file's folder goes first on sys.path so that its sibling modules import.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem if path.stem.isidentifier() else "databacked_pipeline"
    existing = sys.modules.get(name)
    if (
        existing is not None
        and getattr(existing, "__file__", None) != str(path)
        and not getattr(existing, "__databacked_pipeline_file__", False)
    ):
        # Never shadow an imported module (a user's json.py must not replace the stdlib's);
        # another pipeline file of the same name is replaced, so workers import it by its name.
        name = f"databacked_pipeline_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {str(path)!r} as Python; is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    module.__databacked_pipeline_file__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _import_failed(str(path), exc) from exc
    # Worker processes cannot import a module loaded by path; ship its functions by value.
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def _load_module(dotted: str) -> Any:
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and dotted.startswith(exc.name):
            raise ConfigError(
                f"No module named {dotted!r}: give a file path (pipelines.py:NAME) or an "
                "importable module."
            ) from exc
        raise _import_failed(dotted, exc) from exc
    except Exception as exc:
        raise _import_failed(dotted, exc) from exc


def _import_failed(where: str, exc: Exception) -> ConfigError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ConfigError(
        f"Importing {where} failed with {type(exc).__name__}: {first}; "
        "fix the module (run with --debug for the traceback)."
    )


def _is_pipeline(value: Any) -> bool:
    return type(value).__name__ == "Pipeline"


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """``["n=3", "name=plate1"]`` -> ``{"n": "3", "name": "plate1"}``: the text of each
    value; ``check_params`` converts it by the pipeline's annotation."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"Cannot read --param {pair!r}: write NAME=VALUE, e.g. --param threshold=0.5."
            )
        params[key] = raw
    return params


def check_params(pipeline: Any, params: dict[str, Any], reference: str) -> None:
    """Refuse unknown or missing pipeline parameters before anything runs, and convert each
    given text by the parameter's annotation (a DataFrame from a CSV path, an int, ...)."""
    from databacked.cli.params import annotations, convert

    fn = getattr(pipeline, "fn", pipeline)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    hints = annotations(fn)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    names = ", ".join(accepted) or "none"
    for key in list(params):
        if key not in accepted and not open_ended:
            hint = did_you_mean(key, list(accepted))
            raise ConfigError(
                f"The pipeline {reference} has no parameter {key!r}{hint}; its parameters "
                f"are: {names}."
            )
        if isinstance(params[key], str):
            annotation = hints.get(key, accepted[key].annotation if key in accepted else None)
            if annotation is inspect.Parameter.empty:
                annotation = None
            params[key] = convert(key, params[key], annotation, reference)
    for name, parameter in accepted.items():
        required = parameter.default is parameter.empty and parameter.kind not in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        )
        if required and name not in params:
            raise ConfigError(
                f"The pipeline {reference} needs --param {name}=VALUE (its parameters: {names})."
            )


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def note(message: str, *, error: bool = False) -> None:
    """One yellow ``Warning:`` (or red ``Error:``) line on stderr; the message is plain text."""
    from rich.text import Text

    word = Text("Error:", style="red") if error else Text("Warning:", style="yellow")
    err_console.print(Text.assemble(word, " ", message), highlight=False, soft_wrap=True)


@contextmanager
def warnings_as_notes() -> Iterator[None]:
    """Warnings about the user's code (a lossy input, a step fingerprinted by bytecode) as
    one yellow line each on stderr, instead of Python's file:line dump."""
    import warnings

    def show(message: Any, *_args: Any, **_kwargs: Any) -> None:
        note(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each distinct message once
        warnings.showwarning = show
        yield


class _LibraryNotes(logging.Handler):
    """The library's log (logger ``databacked``) from WARNING up, as notes: a glob matching
    nothing yet, a repo not there yet, a watcher's failed run. Each distinct warning once per
    command, as Python shows warnings; every error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break the command
            self.handleError(record)
            return
        error = record.levelno >= logging.ERROR
        if not error:
            if message in self.said:
                return
            self.said.add(message)
        note(message, error=error)


_NOTES = _LibraryNotes()


def show_library_log(ctx: typer.Context) -> None:
    """For the command of ``ctx``: the library's warnings and errors on stderr as notes
    (secrets masked), and logging left as it was once the command ends."""
    from databacked.secrets import RedactingFilter

    logger = logging.getLogger("databacked")
    if _NOTES in logger.handlers:
        return
    if not _NOTES.filters:
        _NOTES.addFilter(RedactingFilter())
    _NOTES.said.clear()
    logger.addHandler(_NOTES)
    ctx.call_on_close(lambda: logger.removeHandler(_NOTES))


def short(key: str | None, n: int = 12) -> str:
    return (key or "")[:n]


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")
]


def print_json(value: Any) -> None:
    """JSON on stdout, nothing else: what scripts and ``jq`` read."""
    typer.echo(json.dumps(value, indent=2, default=str))
