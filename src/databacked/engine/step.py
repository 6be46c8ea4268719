"""``@db.step``: a plain function plus where and how its result is stored.

Inside a ``@db.pipeline`` a call or ``.map`` records call nodes and returns handles;
outside one, calling a step just runs the function (notebook use).
"""

from __future__ import annotations

import functools
import inspect
import string
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

from databacked.engine.graph import Handle, MapResult, current_graph, has_handles
from databacked.errors import PipelineError

SINGLE = "value"
"""Output name of a step with one output."""

Target = str | Callable[..., str]


class Step:
    """A decorated function; see :func:`step`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        target: Target | None = None,
        targets: Mapping[str, Target] | None = None,
        format: Any = None,
        version: str | int | None = None,
        cache: bool = True,
        persist: bool = True,
        retries: int = 0,
        retry_delay: float = 0.0,
        batch: int | None = None,
        name: str | None = None,
        lossy_ok: bool = False,
        timeout: float | None = None,
        resources: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        if target is not None and targets is not None:
            raise PipelineError(
                f"Step {fn.__name__!r} gives both target= and targets=; use one of them."
            )
        self.fn = fn
        self.name = name or fn.__name__
        self.targets: dict[str, Target | None] = (
            dict(targets) if targets is not None else {SINGLE: target}
        )
        self.multi = targets is not None
        if isinstance(format, Mapping):
            self.formats = {k: format.get(k) for k in self.targets}
        else:
            self.formats = dict.fromkeys(self.targets, format)
        self.version = None if version is None else str(version)
        self.cache = cache
        self.persist = persist
        self.retries = int(retries)
        self.retry_delay = float(retry_delay)
        self.batch = batch
        self.lossy_ok = bool(lossy_ok)
        """True: reading lossy inputs (a stretched PNG) is intended; no warning."""
        self.timeout = _seconds(timeout, fn.__name__)
        """Seconds a call may run before it is stopped and failed (None: no limit)."""
        self.resources = dict(resources or {})
        """What one call needs at once: {"cpus": 2, "memory": "4GB", "gpus": 1}."""
        self.queue = _queue(queue, fn.__name__)
        """The Celery queue its calls go to (``databacked worker --queues``); None: the default."""
        self.signature = inspect.signature(fn)
        self._fingerprint: str | None = None
        self._files: set[str] | None = None
        self._fields: dict[str, frozenset[str]] = {}
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def key_targets(self) -> bool:
        """True when a target template uses ``{key}`` (rendered once the key is known)."""
        return any(
            isinstance(t, str) and "key" in self.template_fields(t) for t in self.targets.values()
        )

    def template_fields(self, template: str) -> frozenset[str]:
        fields = self._fields.get(template)
        if fields is None:
            fields = frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)
            self._fields[template] = fields
        return fields

    @property
    def output_names(self) -> list[str]:
        return list(self.targets)

    @property
    def fingerprint(self) -> str:
        """``name@version``, else a hash of the normalised source and local helpers."""
        if self._fingerprint is None:
            from databacked.engine.keys import fingerprint

            self._fingerprint = fingerprint(self.fn, self.name, self.version)
        return self._fingerprint

    def file_params(self) -> set[str]:
        """Parameters annotated ``db.File``: input files hashed by content."""
        if self._files is None:
            self._files = self._file_params()
        return self._files

    def _file_params(self) -> set[str]:
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception:
            hints = {p.name: p.annotation for p in self.signature.parameters.values()}
        # A step annotated with File has imported databacked.artifact by now (resolving the
        # hints imports it); when it is not loaded, no annotation can be File.
        file_type = getattr(sys.modules.get("databacked.artifact"), "File", None)
        return {
            name
            for name, hint in hints.items()
            if (file_type is not None and hint is file_type)
            or (isinstance(hint, str) and hint.split(".")[-1] == "File")
        }

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Bound arguments by name, defaults applied; a clear error for a bad call."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineError(
                f"Step {self.name!r} was called with bad arguments: {exc}."
            ) from exc
        bound.apply_defaults()
        return dict(bound.arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = current_graph()
        if graph is None:
            return self.fn(*args, **kwargs)
        node = graph.add_call(self, self.bind(args, kwargs))
        return Handle(node)

    def map(self, **iterables: Any) -> Any:
        """One call per element: lists, tuples, pandas Series and map results zip together;
        scalars broadcast. An upstream ``Handle`` whose value is a list, or a dynamic map
        result, is iterated at run time (dynamic fan-out).
        """
        graph = current_graph()
        static: dict[str, list[Any]] = {}
        dynamic: dict[str, Any] = {}
        consts: dict[str, Any] = {}
        for name, value in iterables.items():
            if (isinstance(value, MapResult) and value.dynamic) or isinstance(value, Handle):
                dynamic[name] = value
            elif _is_iterable(value):
                static[name] = list(value)
            else:
                consts[name] = value
        if not static and not dynamic:
            raise PipelineError(
                f"{self.name}.map() got nothing to iterate over: pass at least one list, "
                "Series, tuple or upstream result."
            )
        lengths = {name: len(items) for name, items in static.items()}
        if len(set(lengths.values())) > 1:
            raise PipelineError(
                f"{self.name}.map() got iterables of different lengths {lengths}; "
                "pass equal lengths (they are zipped)."
            )
        if graph is None:
            if dynamic:
                raise PipelineError(f"{self.name}.map() over a handle works only in a pipeline.")
            n = next(iter(lengths.values()))
            return [self.fn(**consts, **{k: v[i] for k, v in static.items()}) for i in range(n)]
        if dynamic:
            node = graph.add_expand(self, dynamic, static, consts)
            return MapResult(expand=node)
        n = next(iter(lengths.values()))
        handles = [
            Handle(
                graph.add_call(
                    self, self.bind((), {**consts, **{k: v[i] for k, v in static.items()}})
                )
            )
            for i in range(n)
        ]
        return MapResult(handles)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def _is_iterable(value: Any) -> bool:
    if isinstance(value, MapResult):
        return True
    if isinstance(value, str | bytes | Mapping):
        return False
    if isinstance(value, list | tuple):
        return True
    if has_handles(value):
        return False
    # pandas Series / Index, numpy 1-d arrays, ranges: anything sized that list() takes
    return hasattr(value, "__iter__") and hasattr(value, "__len__")


def step(
    fn: Callable[..., Any] | None = None,
    *,
    target: Target | None = None,
    targets: Mapping[str, Target] | None = None,
    format: Any = None,
    version: str | int | None = None,
    cache: bool = True,
    persist: bool = True,
    retries: int = 0,
    retry_delay: float = 0.0,
    batch: int | None = None,
    name: str | None = None,
    lossy_ok: bool = False,
    timeout: float | None = None,
    resources: Mapping[str, Any] | None = None,
    queue: str | None = None,
) -> Any:
    """Declare a pipeline step, with or without arguments.

    >>> @step(target="squares/{x}.json")
    ... def square(x: int) -> int:
    ...     return x * x
    >>> square(3)
    9
    """
    options = dict(
        target=target,
        targets=targets,
        format=format,
        version=version,
        cache=cache,
        persist=persist,
        retries=retries,
        retry_delay=retry_delay,
        batch=batch,
        name=name,
        lossy_ok=lossy_ok,
        timeout=timeout,
        resources=resources,
        queue=queue,
    )
    if fn is not None:
        return Step(fn, **options)  # type: ignore[arg-type]
    return lambda f: Step(f, **options)  # type: ignore[arg-type]


def _seconds(timeout: float | None, name: str) -> float | None:
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise PipelineError(
            f"Step {name!r} has timeout={timeout!r}; give a positive number of seconds."
        )
    return seconds


def _queue(queue: str | None, name: str) -> str | None:
    if queue is None:
        return None
    if not isinstance(queue, str) or not queue.strip() or queue != queue.strip():
        raise PipelineError(
            f"Step {name!r} has queue={queue!r}; give the name of a Celery queue, such as 'gpu'."
        )
    return queue


__all__ = ["SINGLE", "Step", "step"]
