"""Warnings for steps that read back a lossy artifact instead of the values written.

A step's output is read back from its file, so when the format lost information (a float
image contrast-stretched into an 8-bit PNG) the consumer silently computes on other numbers
than its upstream returned. Formats say what they lose (``Format.lossy`` for every write,
``Format.lost(metadata)`` for one file); this module turns that into one warning naming the
step, the argument and what was lost, before the consumer runs. Annotating the argument
``db.File`` or giving the step ``lossy_ok=True`` says it is intended.
"""

from __future__ import annotations

import warnings
from typing import Any

from databacked.engine.graph import CallNode, Graph, Handle, MapResult
from databacked.errors import FormatError


class LossyInputWarning(UserWarning):
    """A step reads an artifact whose format did not keep the values it was given."""


def check_graph(graph: Graph) -> None:
    """Warn for each argument fed by an output whose format loses on every write."""
    seen: set[tuple[str, str, str]] = set()
    for node in graph.nodes:
        args = node.args if isinstance(node, CallNode) else {**node.sources, **node.consts}
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


def static_loss(upstream: Any, output: str) -> str:
    """What the upstream's output format loses on every write ("" when nothing)."""
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
    from databacked.formats.registry import get_format

    try:
        return get_format(spec)
    except FormatError:
        return None


def _producers(value: Any) -> list[tuple[Any, str]]:
    """(upstream step, output name) of every handle in an argument value."""
    if isinstance(value, Handle):
        step = value.node.step
        return [(step, value.output or step.output_names[0])]
    if isinstance(value, MapResult):
        if value.expand is not None:
            step = value.expand.step
            return [(step, step.output_names[0])] if not step.multi else []
        return [p for h in value.handles() for p in _producers(h)]
    if isinstance(value, list | tuple):
        return [p for item in value for p in _producers(item)]
    if isinstance(value, dict):
        return [p for item in value.values() for p in _producers(item)]
    return []


__all__ = ["LossyInputWarning", "check_graph", "check_input", "static_loss"]
