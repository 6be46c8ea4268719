"""Warnings for steps that read back a lossy artifact instead of the values written.

A step's output is read back from its file, so when the format lost information (a float
image contrast-stretched into an 8-bit PNG) the consumer silently computes on other numbers
than its upstream returned. Formats say what they lose (``Format.lossy`` for every write,
``Format.lost(metadata)`` for one file); this module turns that into one warning naming the
step, the argument and what was lost, before the consumer runs. Annotating the argument
``db.File`` or giving the step ``lossy_ok=True`` says it is intended.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from typing import Any

from databacked.engine.graph import CallNode, Graph, Handle, MapResult
from databacked.errors import FormatError


class LossyInputWarning(UserWarning):
    """A step reads an artifact whose format did not keep the values it was given."""


def check_graph(graph: Graph) -> None:
    """Warn for each argument fed by an output whose format loses on every write."""
    seen: set[tuple[str, str, str]] = set()
    for node in graph.nodes:
        args = (
            node.args
            if isinstance(node, CallNode)
            else {**node.sources, **node.statics, **node.consts}
        )
        for arg, value in args.items():
            for upstream, output in _producers(value):
                what = static_loss(upstream, output)
                if what and (node.step.name, arg, upstream.name) not in seen:
                    seen.add((node.step.name, arg, upstream.name))
                    warn(node.step, arg, upstream.name, what)


def check_input(step: Any, arg: str, upstream: Any, output: str, record: Any) -> None:
    """Warn when the artifact behind one input lost values (and no static warning said so)."""
    if _silenced(step, arg):
        return
    fmt = _format_of(getattr(record, "format", None))
    if fmt is None or static_loss(upstream, output):
        return
    what = fmt.lost(dict(getattr(record, "metadata", None) or {}))
    if what:
        warn(step, arg, upstream.name, what)


_STATIC: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def static_loss(upstream: Any, output: str) -> str:
    """What the upstream's output format loses on every write ("" when nothing); once per
    step and output, since a reducer may have a hundred thousand inputs."""
    known = _STATIC.setdefault(upstream, {})
    if output not in known:
        known[output] = _static_loss(upstream, output)
    return known[output]


def _static_loss(upstream: Any, output: str) -> str:
    given = upstream.formats.get(output)
    template = upstream.targets.get(output)
    fmt = _format_of(given)
    if fmt is None and isinstance(template, str):
        from databacked.formats.registry import format_for_path

        try:
            fmt = format_for_path(template)
        except FormatError:
            fmt = None
    return str(fmt.lossy) if fmt is not None and upstream.persist else ""


def warn(step: Any, arg: str, upstream: str, what: str) -> None:
    if _silenced(step, arg):
        return
    warnings.warn(
        LossyInputWarning(
            f"Step {step.name!r} reads its input {arg!r} back from the files step "
            f"{upstream!r} wrote, whose {what}: it computes on those bytes, not on the values "
            f"{upstream!r} returned. Pass the values through a lossless format (.ome.tiff, "
            f".npy), or annotate {arg!r} as db.File (or give {step.name!r} lossy_ok=True) "
            "if that is intended."
        ),
        stacklevel=2,
    )


def _silenced(step: Any, arg: str) -> bool:
    return bool(getattr(step, "lossy_ok", False)) or arg in step.file_params()


def _format_of(spec: Any) -> Any:
    if spec is None:
        return None
    if isinstance(spec, str):
        return _format_named(spec)
    from databacked.formats.registry import get_format

    try:
        return get_format(spec)
    except FormatError:
        return None


@functools.lru_cache(maxsize=64)
def _format_named(name: str) -> Any:
    """A record's format by name (records name theirs), looked up once per name."""
    from databacked.formats.registry import get_format

    try:
        return get_format(name)
    except FormatError:
        return None


def _producers(value: Any) -> list[tuple[Any, str]]:
    """Distinct (upstream step, output name) of the handles in an argument value."""
    found: dict[tuple[int, str | None], tuple[Any, str]] = {}
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Handle):
            key = (id(item.node.step), item.output)
            if key not in found:
                step = item.node.step
                found[key] = (step, item.output or step.output_names[0])
        elif isinstance(item, MapResult):
            if item.expand is None:
                stack.extend(item.handles())
            elif not item.expand.step.multi:
                step = item.expand.step
                found.setdefault((id(step), None), (step, step.output_names[0]))
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return list(found.values())


__all__ = ["LossyInputWarning", "check_graph", "check_input", "static_loss"]
