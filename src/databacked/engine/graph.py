"""The traced graph: call nodes, dynamic fan-out nodes, and handles to their outputs.

Tracing a pipeline builds nodes in creation order, which is already a topological order
because a handle can only refer to a node created before it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databacked.engine.step import Step


@dataclass(eq=False)
class CallNode:
    """One call of a step; ``args`` hold constants, handles or lists of handles."""

    id: int
    step: Step
    args: dict[str, Any]

    def deps(self) -> list[CallNode | ExpandNode]:
        return [d for value in self.args.values() for d in dependencies(value)]


@dataclass(eq=False)
class ExpandNode:
    """A ``.map`` whose length is known only at run time (over an upstream list)."""

    id: int
    step: Step
    sources: dict[str, Handle | MapResult]
    """Arguments iterated at run time."""
    statics: dict[str, list[Any]]
    """Arguments iterated over lists known at trace time."""
    consts: dict[str, Any]
    """Arguments broadcast to every element."""
    children: list[CallNode] | None = None
    """The calls, once expanded."""
    skipped: bool = False
    """True when the list it iterates over was never produced (an upstream failed)."""

    def deps(self) -> list[CallNode | ExpandNode]:
        out: list[CallNode | ExpandNode] = []
        for value in (*self.sources.values(), *self.statics.values(), *self.consts.values()):
            out.extend(dependencies(value))
        return out


@dataclass(frozen=True, eq=False)
class Handle:
    """The future output of one call; ``handle["name"]`` picks a named output."""

    node: CallNode
    output: str | None = None

    def __getitem__(self, name: str) -> Handle:
        names = self.node.step.output_names
        if name not in names:
            raise KeyError(f"Step {self.node.step.name!r} has no output {name!r}; it has {names}.")
        return Handle(self.node, name)

    def __repr__(self) -> str:
        suffix = f"[{self.output!r}]" if self.output else ""
        return f"<{self.node.step.name} call #{self.node.id}{suffix}>"


class MapResult(Sequence[Any]):
    """The handles of a ``.map``: a list known at trace time, or a dynamic fan-out."""

    def __init__(
        self, handles: list[Handle] | None = None, expand: ExpandNode | None = None
    ) -> None:
        self._handles = handles
        self.expand = expand

    @property
    def dynamic(self) -> bool:
        return self.expand is not None

    def handles(self) -> list[Handle]:
        if self._handles is not None:
            return self._handles
        assert self.expand is not None
        if self.expand.children is None:
            raise RuntimeError("a dynamic fan-out is not expanded yet")
        return [Handle(child) for child in self.expand.children]

    def __len__(self) -> int:
        if self._handles is None:
            raise TypeError("The length of a dynamic .map is known only when the pipeline runs.")
        return len(self._handles)

    def __getitem__(self, index: Any) -> Any:
        if self._handles is None:
            raise TypeError("Items of a dynamic .map are known only when the pipeline runs.")
        return self._handles[index]

    def __iter__(self) -> Iterator[Any]:
        if self._handles is None:
            raise TypeError("A dynamic .map cannot be iterated while tracing; pass it on whole.")
        return iter(self._handles)

    def __repr__(self) -> str:
        if self._handles is None:
            return f"<dynamic map of {self.expand.step.name if self.expand else '?'}>"
        return f"<map of {len(self._handles)} calls>"


@dataclass
class Graph:
    """Nodes in creation (topological) order."""

    nodes: list[CallNode | ExpandNode] = field(default_factory=list)

    def add_call(self, step: Step, args: dict[str, Any]) -> CallNode:
        node = CallNode(len(self.nodes), step, args)
        self.nodes.append(node)
        return node

    def add_expand(
        self,
        step: Step,
        sources: dict[str, Any],
        statics: dict[str, list[Any]],
        consts: dict[str, Any],
    ) -> ExpandNode:
        node = ExpandNode(len(self.nodes), step, sources, statics, consts)
        self.nodes.append(node)
        return node


_current: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "databacked_graph", default=None
)


def current_graph() -> Graph | None:
    """The graph being traced, or None outside a pipeline."""
    return _current.get()


def tracing(graph: Graph) -> contextvars.Token[Graph | None]:
    return _current.set(graph)


def end_tracing(token: contextvars.Token[Graph | None]) -> None:
    _current.reset(token)


def dependencies(value: Any) -> list[CallNode | ExpandNode]:
    """Nodes a value refers to (handles, lists of handles, map results, dicts of them)."""
    if isinstance(value, Handle):
        return [value.node]
    if isinstance(value, MapResult):
        if value.expand is not None:
            return [value.expand]
        return [h.node for h in value.handles()]
    if isinstance(value, list | tuple):
        return [d for item in value for d in dependencies(item)]
    if isinstance(value, dict):
        return [d for item in value.values() for d in dependencies(item)]
    return []


def has_handles(value: Any) -> bool:
    return bool(dependencies(value))


__all__ = [
    "CallNode",
    "ExpandNode",
    "Graph",
    "Handle",
    "MapResult",
    "current_graph",
    "dependencies",
    "has_handles",
]
