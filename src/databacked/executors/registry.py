"""Finding an executor by name, URL or object; imports each implementation on first use.

``get_executor("threads")``, ``get_executor("dask://scheduler:8786")``,
``get_executor("amqp://guest@broker//")`` (Celery) or an executor object, returned as is.
Third-party executors register a factory in the entry-point group ``databacked.executors``;
a factory is called as ``factory(workers=..., **options)``, plus ``address=URL`` when the
executor was named by a URL.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from databacked.errors import ExecutorError
from databacked.executors.base import Executor

ENTRY_POINT_GROUP = "databacked.executors"

# name -> ("module:attribute", the extra that brings its dependencies, or None)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "inline": ("databacked.executors.local:InlineExecutor", None),
    "threads": ("databacked.executors.local:ThreadExecutor", None),
    "processes": ("databacked.executors.local:ProcessExecutor", None),
    "subprocess": ("databacked.executors.subprocess:SubprocessExecutor", None),
    "dask": ("databacked.executors.dask:DaskExecutor", "dask"),
    "celery": ("databacked.executors.celery:CeleryExecutor", "celery"),
}

_ALIASES = {"thread": "threads", "process": "processes", "loky": "processes", "local": "inline"}

# URL schemes that name an executor: a Dask scheduler or a Celery broker.
_SCHEMES = {
    "dask": "dask",
    "tcp": "dask",
    "tls": "dask",
    "celery": "celery",
    "amqp": "celery",
    "amqps": "celery",
    "pyamqp": "celery",
    "redis": "celery",
    "rediss": "celery",
}


def known_executors() -> list[str]:
    """Names ``get_executor`` accepts: the built-in ones and installed plugins."""
    from importlib.metadata import entry_points

    return sorted({*_BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def get_executor(
    name_or_url: str | Executor, *, workers: int | None = None, **options: Any
) -> Executor:
    """The executor named by ``name_or_url``, created with ``workers`` and ``options``.

    >>> get_executor("inline").name
    'inline'
    """
    if not isinstance(name_or_url, str):
        if isinstance(name_or_url, Executor):
            return name_or_url
        raise ExecutorError(
            f"{name_or_url!r} is not an executor: pass a name such as 'processes', a URL such "
            "as 'dask://host:8786', or an object with submit, submit_batch and close."
        )
    name = name_or_url.strip()
    if "://" in name:
        scheme = name.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise ExecutorError(
                f"Unknown executor URL {name!r}: use dask://host:port for a Dask scheduler "
                "or an amqp:// or redis:// broker URL for Celery."
            )
        if scheme == "dask":
            # Dask's own clients speak tcp://; dask:// only says which executor is meant.
            name_or_url = "tcp://" + name.split("://", 1)[1]
        options.setdefault("address", name_or_url)
        name = _SCHEMES[scheme]
    name = _ALIASES.get(name.lower(), name.lower())
    factory = _factory(name)
    try:
        # Check the options against the signature only, so a TypeError raised inside the
        # constructor is not mistaken for a bad option.
        inspect.signature(factory).bind(workers=workers, **options)
    except TypeError as exc:
        raise ExecutorError(
            f"The {name} executor does not accept the options {sorted(options)}: {exc}."
        ) from exc
    except ValueError:
        pass  # no introspectable signature (a C extension): let the call decide
    return factory(workers=workers, **options)


def _factory(name: str) -> Callable[..., Executor]:
    if name in _BUILTIN:
        target, extra = _BUILTIN[name]
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                raise ExecutorError(
                    f"The {name} executor is not available yet in this version of databacked; "
                    "use inline, threads or processes."
                ) from exc
            hint = f"pip install 'databacked[{extra}]'" if extra else f"pip install {exc.name}"
            raise ExecutorError(
                f"The {name} executor needs the package {exc.name!r}, which is not "
                f"installed: {hint}."
            ) from exc
        factory: Callable[..., Executor] = getattr(module, attribute)
        return factory
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            loaded: Callable[..., Executor] = entry.load()
        except Exception as exc:
            raise ExecutorError(
                f"The executor plugin {name!r} ({entry.value}) failed to import: {exc}; "
                "check that its package is installed correctly."
            ) from exc
        return loaded
    import difflib

    close = difflib.get_close_matches(name, known_executors(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ExecutorError(
        f"Unknown executor {name!r}{hint}; known executors: {', '.join(known_executors())}."
    )


__all__ = ["ENTRY_POINT_GROUP", "get_executor", "known_executors"]
