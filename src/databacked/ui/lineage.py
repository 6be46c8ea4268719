"""An artifact's neighbourhood in the lineage graph, and its drawing with Graphviz ``dot``.

Ancestors and descendants are collected hop by hop (a hop is one call: its inputs on one
side, its outputs on the other), with a node budget: past ``MAX_NODES`` the graph is cut
and flagged, so a file read by 100,000 calls gives a notice instead of a frozen browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import sqlalchemy as sa

from databacked.catalog.schema import artifacts, call_attempts, call_inputs, call_outputs, calls

MAX_NODES = 300
"""Above this many nodes the page says "too large, narrow it" and draws the first ones."""

DOT_TIMEOUT_S = 10.0


def neighbourhood(
    conn: sa.Connection, digest: str, *, up: int = 2, down: int = 2, limit: int = MAX_NODES
) -> dict[str, Any]:
    """Nodes (artifacts by hash, calls by key) and edges within ``up``/``down`` hops."""
    artifacts_seen: dict[str, dict[str, Any]] = {digest: {"hash": digest}}
    calls_seen: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()
    truncated = False

    def budget() -> int:
        return limit - len(artifacts_seen) - len(calls_seen)

    # upward: the calls that made the frontier, then their inputs; downward: the calls that
    # read it, then their outputs. An edge always points the way the data flowed.
    for hops, near, far, upward in ((up, call_outputs, call_inputs, True),
                                    (down, call_inputs, call_outputs, False)):  # fmt: skip
        frontier = {digest}
        for _ in range(max(0, hops)):
            if not frontier or budget() <= 0:
                truncated = truncated or bool(frontier)
                break
            read = sa.select(near.c.key, near.c.hash).where(near.c.hash.in_(sorted(frontier)))
            found = list(conn.execute(read.limit(budget() + 1)))
            truncated |= len(found) > budget()
            keys = set()
            for key, h in found[: max(budget(), 0)]:
                keys.add(key)
                calls_seen.setdefault(key, {"key": key})
                edges.add((key, h) if upward else (h, key))
            frontier = set()
            if not keys:
                continue
            onward = sa.select(far.c.key, far.c.hash).where(far.c.key.in_(sorted(keys)))
            for key, h in conn.execute(onward.limit(budget() + 1)):
                if budget() <= 0 and h not in artifacts_seen:
                    truncated = True
                    continue
                if h not in artifacts_seen:
                    artifacts_seen[h] = {"hash": h}
                    frontier.add(h)
                edges.add((h, key) if upward else (key, h))
    _describe(conn, artifacts_seen, calls_seen)
    nodes = [{"id": h, "kind": "artifact", **a} for h, a in artifacts_seen.items()]
    nodes += [{"id": k, "kind": "call", **c} for k, c in calls_seen.items()]
    return {
        "focus": digest,
        "nodes": nodes,
        "edges": [{"source": s, "target": t} for s, t in sorted(edges)],
        "truncated": truncated,
    }


def _describe(
    conn: sa.Connection, arts: dict[str, dict[str, Any]], steps: dict[str, dict[str, Any]]
) -> None:
    """Paths of artifacts and step names/statuses of calls, in batched queries."""
    hashes = sorted(arts)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        query = sa.select(artifacts.c.hash, artifacts.c.path, artifacts.c.format).where(
            artifacts.c.hash.in_(chunk)
        )
        for h, path, fmt in conn.execute(query):
            arts[h].update(path=path, format=fmt or "")
        missing = [h for h in chunk if "path" not in arts[h]]
        if missing:
            query = sa.select(call_inputs.c.hash, call_inputs.c.path).where(
                call_inputs.c.hash.in_(missing)
            )
            for h, path in conn.execute(query):
                arts[h].setdefault("path", path)
    keys = sorted(steps)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for key, step in conn.execute(
            sa.select(calls.c.key, calls.c.step).where(calls.c.key.in_(chunk))
        ):
            steps[key].update(step=step, status="ran")
        query = sa.select(call_attempts.c.key, call_attempts.c.step, call_attempts.c.status)
        for key, step, status in conn.execute(query.where(call_attempts.c.key.in_(chunk))):
            steps[key].setdefault("step", step)
            steps[key].setdefault("status", status)
    for a in arts.values():
        a.setdefault("path", None)
    for c in steps.values():
        c.setdefault("step", "?")
        c.setdefault("status", "ran")


def has_dot() -> bool:
    return shutil.which("dot") is not None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


_HASHED = re.compile(r"^([0-9a-f]{8})[0-9a-f]{56}(\..*)?$")


def short_path(path: str | None, digest: str) -> str:
    """The last two parts of a path, a 64-hex file name cut to 8 (object-store outputs)."""
    if not path:
        return digest[:12]
    parts = path.rsplit("/", 2)[-2:]
    match = _HASHED.match(parts[-1])
    if match:
        parts[-1] = f"{match[1]}…{match[2] or ''}"
    return "/".join(parts)


def to_dot(graph: dict[str, Any]) -> str:
    """The graph in the DOT language: artifacts as boxes, calls as ellipses, links to pages."""
    lines = [
        "digraph lineage {",
        '  graph [rankdir=LR, bgcolor="transparent", fontname="Helvetica", nodesep=0.25];',
        '  node [fontname="Helvetica", fontsize=11, style=filled, color="#8899aa"];',
        '  edge [color="#8899aa", arrowsize=0.6];',
    ]
    for node in graph["nodes"]:
        if node["kind"] == "artifact":
            text = short_path(node.get("path"), node["id"])
            fill = "#ffe9a8" if node["id"] == graph["focus"] else "#eef3f8"
            attrs = f'shape=note, fillcolor="{fill}", URL={_quote("/artifacts/" + node["id"])}'
        else:
            text = f"{node['step']}\n{node['id'][:8]}"
            fill = {"failed": "#f8c9c4", "skipped": "#e5e5e5"}.get(node["status"], "#cdebd3")
            attrs = f'shape=ellipse, fillcolor="{fill}", URL={_quote("/calls/" + node["id"])}'
        tooltip = node.get("path") or node["id"]
        lines.append(
            f"  {_quote(node['id'])} [label={_quote(text)}, tooltip={_quote(tooltip)}, {attrs}];"
        )
    for edge in graph["edges"]:
        lines.append(f"  {_quote(edge['source'])} -> {_quote(edge['target'])};")
    lines.append("}")
    return "\n".join(lines)


def render_svg(graph: dict[str, Any]) -> str | None:
    """Inline SVG from ``dot -Tsvg`` (no XML prolog); None without Graphviz or on failure."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "-Tsvg"],
            input=to_dot(graph).encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    svg = done.stdout.decode("utf-8", "replace")
    start = svg.find("<svg")
    if start < 0:
        return None
    svg = svg[start:]
    # Natural size, but never wider than the page (CSS max-width; the viewBox keeps the ratio).
    return svg.replace("<svg ", '<svg class="graph" ', 1)


__all__ = ["MAX_NODES", "has_dot", "neighbourhood", "render_svg", "to_dot"]
