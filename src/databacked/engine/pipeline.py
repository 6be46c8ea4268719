"""``@db.pipeline``: trace a function that wires steps into a graph of calls."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from databacked.engine.graph import Graph, end_tracing, tracing
from databacked.errors import DatabackedError, PipelineError


@dataclass
class Traced:
    """A traced pipeline: its graph and its return value (with handles in it)."""

    graph: Graph
    value: Any


class Pipeline:
    """A decorated pipeline function; ``db.run(pipeline, ...)`` traces and runs it."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def trace(self, *args: Any, **kwargs: Any) -> Traced:
        """Call the function with step calls recorded instead of run."""
        graph = Graph()
        token = tracing(graph)
        try:
            value = self.fn(*args, **kwargs)
        except DatabackedError:
            raise
        except Exception as exc:
            # The wiring itself failed (before any step ran): usually a bad argument.
            raise PipelineError(
                f"The pipeline {self.name!r} failed while wiring its steps, before anything "
                f"ran ({type(exc).__name__}: {exc}); check the arguments it was given."
            ) from exc
        finally:
            end_tracing(token)
        return Traced(graph, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Called directly (a notebook): run the wiring eagerly, steps execute as plain calls.
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a pipeline, with or without arguments.

    >>> @pipeline
    ... def nothing():
    ...     return 1
    >>> nothing.trace().value
    1
    """
    if fn is not None:
        return Pipeline(fn, name)
    return lambda f: Pipeline(f, name)


def as_pipeline(obj: Any) -> Pipeline:
    """A Pipeline from a Pipeline, a Step (one call) or a plain function."""
    from databacked.engine.step import Step

    if isinstance(obj, Pipeline):
        return obj
    if isinstance(obj, Step):
        return Pipeline(obj.__call__, name=obj.name)
    if callable(obj):
        return Pipeline(obj)
    raise TypeError(f"{obj!r} is not a pipeline: decorate a function with @db.pipeline.")


__all__ = ["Pipeline", "Traced", "as_pipeline", "pipeline"]
