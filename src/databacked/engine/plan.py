"""Deciding each call before it runs: targets, keys, cache hits, and the reason to run.

Shared by ``db.plan`` (which stops here) and the scheduler (which calls these functions as
upstream results become known). Nothing here reads an output or re-hashes an unchanged
input: cache hits are decided from the catalog and ``stat`` calls alone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from databacked.engine import keys, lossy
from databacked.engine.files import FileHasher
from databacked.engine.graph import CallNode, Handle, MapResult, has_handles
from databacked.engine.worker import InputSpec, OutputSpec
from databacked.errors import (
    PathEscapeError,
    PipelineError,
    TargetConflictError,
    TargetEscapeError,
    UnhashableValueError,
)
from databacked.hashing import combine, hash_value

MANY = 50
"""Beyond this many new calls, earlier versions of their targets are listed in one query."""
"""Stat-cache namespace for input files given as local paths (outside any store)."""


@dataclass(eq=False)
class CallState:
    """What the driver knows about one call node."""

    node: CallNode
    status: str = "pending"
    """pending, waiting, cached, run, running, ran, failed, skipped."""
    key: str = ""
    reason: str = ""
    targets: dict[str, str | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    params_hash: str = ""
    inputs: dict[str, InputSpec | tuple[InputSpec, ...]] = field(default_factory=dict)
    input_hashes: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    seconds: float | None = None
    error: str = ""
    attempts: int = 0
    upstream_ran: bool = False
    deps: list[Any] | None = field(default=None, repr=False)
    """Upstream nodes, fan-outs replaced by their calls as they expand (``upstream_ready``)."""
    cursor: int = field(default=0, repr=False)
    """How many of ``deps`` are known finished."""
    blocker: int | None = field(default=None, repr=False)
    """Id of the upstream node this call waits for, if any."""

    @property
    def step(self) -> Any:
        return self.node.step

    @property
    def done(self) -> bool:
        return self.status in ("cached", "ran", "failed", "skipped")


# -- targets --------------------------------------------------------------------------------


def render_targets(state: CallState, store: Any) -> None:
    """Render what can be rendered now (``{key}`` waits for the key); check for escapes."""
    step = state.node.step
    if len(state.targets) == len(step.targets) and (state.key or not step.key_targets):
        return
    for name, template in step.targets.items():
        if name in state.targets and state.targets[name] is not None:
            continue
        if template is None:
            state.targets[name] = None
            continue
        if isinstance(template, str):
            fields = step.template_fields(template)
            if "key" in fields and not state.key:
                continue
            values = {"step": step.name, "key": state.key}
            for arg, value in state.node.args.items():
                if arg in fields and has_handles(value):
                    raise PipelineError(
                        f"Target {template!r} of step {step.name!r} uses {{{arg}}}, which is "
                        "another step's result; targets may use parameter values, {key} "
                        "and {step} only."
                    )
                values[arg] = value
            try:
                rendered = template.format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise PipelineError(
                    f"Target {template!r} of step {step.name!r} cannot be rendered ({exc}); "
                    "use the step's parameter names, {key} or {step} in braces."
                ) from exc
        else:
            rendered = str(template(**state.node.args))
        state.targets[name] = _checked(store, step.name, rendered)
        if step.formats.get(name) is None:
            check_extension(step.name, state.targets[name])


def _checked(store: Any, step: str, rendered: str) -> str:
    if (
        "\0" in rendered
        or os.path.isabs(rendered)
        or ".." in rendered.replace("\\", "/").split("/")
    ):
        raise TargetEscapeError(
            f"Target {rendered!r} of step {step!r} leaves the store; "
            "use a relative path without '..'."
        )
    try:
        return str(store.check_path(rendered))
    except PathEscapeError as exc:
        raise TargetEscapeError(
            f"Target {rendered!r} of step {step!r} leaves the store; "
            "use a relative path without '..'."
        ) from exc


_KNOWN: dict[str, bool] = {}
"""Final name parts (".ome.tiff", ".png") already found to have a format."""


def check_extension(step: str, path: str) -> None:
    """A target whose extension no format writes is an error now, not ``.npy`` bytes later
    under a name ``db.load`` refuses."""
    from databacked.errors import UnknownFormatError
    from databacked.formats.registry import OPT_IN_EXTENSIONS, format_for_path

    name = path.rsplit("/", 1)[-1].lower()
    ext = name[name.find(".") :] if "." in name else ""
    if ext and _KNOWN.get(ext):
        return
    if ext and format_for_path(name) is not None:
        _KNOWN[ext] = True
        return
    why = (
        "is a pickle file, which is never written by default"
        if name.endswith(OPT_IN_EXTENSIONS)
        else f"has {'the extension ' + repr(ext) if ext else 'no extension'}, which no "
        "databacked format writes"
    )
    raise UnknownFormatError(
        f"Target {path!r} of step {step!r} {why}; give the step format= (for example "
        "format=db.Npy() or format=db.Pickle()) or end the target with a known extension "
        "(.ome.tiff, .ome.zarr, .tif, .png, .csv, .parquet, .json, .npy)."
    )


def check_conflicts(states: list[CallState], seen: dict[str, CallState]) -> None:
    """Two calls rendering one target is an error, found before anything runs."""
    for state in states:
        for path in state.targets.values():
            if path is None:
                continue
            other = seen.setdefault(path, state)
            if other is not state:
                raise TargetConflictError(
                    f"Steps {other.step.name!r} and {state.step.name!r} both write target "
                    f"{path!r}; include a parameter such as {{key}} in the target template."
                    if other.step is not state.step
                    else f"Two calls of step {state.step.name!r} write the same target "
                    f"{path!r}; include a parameter that differs between calls in the template."
                )


# -- keys -----------------------------------------------------------------------------------


def upstream_ready(state: CallState, states: dict[int, CallState]) -> str:
    """``ready``, ``wait`` (an upstream is not finished; ``state.blocker`` names it) or
    ``skip`` (one failed).

    Upstreams finish for good, so the scan resumes where the last one stopped: over a run,
    each dependency is looked at about once, however often the call is examined.
    """
    if state.deps is None:
        state.deps = list(state.node.deps())
    deps, i = state.deps, state.cursor
    while i < len(deps):
        dep = deps[i]
        if isinstance(dep, CallNode):
            status = states[dep.id].status
            if status in ("failed", "skipped"):
                return "skip"
            if status not in ("cached", "ran"):
                state.cursor, state.blocker = i, dep.id
                return "wait"
            i += 1
        elif dep.skipped:
            return "skip"
        elif dep.children is None:
            state.cursor, state.blocker = i, dep.id
            return "wait"
        else:
            deps[i : i + 1] = dep.children  # a fan-out stands for the calls it became
    state.cursor, state.blocker = i, None
    return "ready"


def compute_key(state: CallState, states: dict[int, CallState], hasher: FileHasher) -> None:
    """Fill params, inputs and the key of a call whose upstreams are all finished."""
    step = state.node.step
    files = step.file_params()
    params: dict[str, Any] = {}
    for name, value in state.node.args.items():
        if has_handles(value):
            if isinstance(value, Handle):
                spec = _as_file(step, name, _input(value, states))
                _check_lossy(step, name, value, states)
                state.inputs[name] = spec
                state.input_hashes[name] = [spec.hash]
            else:
                handles = value.handles() if isinstance(value, MapResult) else list(value)
                if not all(isinstance(h, Handle) for h in handles):
                    raise PipelineError(
                        f"Argument {name!r} of step {step.name!r} mixes step results with "
                        "other values in one list; pass them as separate arguments."
                    )
                specs = tuple(_as_file(step, name, _input(h, states)) for h in handles)
                for handle in handles:
                    _check_lossy(step, name, handle, states)
                state.inputs[name] = specs
                state.input_hashes[name] = [s.hash for s in specs]
            state.upstream_ran |= any(states[d.id].status == "ran" for d in _call_deps(value))
        elif name in files and value is not None:
            state.input_hashes[name] = [hasher.hash(str(value), step.name, name)]
            params[name] = value
        elif _is_artifact(value):
            state.input_hashes[name] = [value.hash]
            params[name] = value
        else:
            params[name] = value
    state.params = params
    hashed = {k: v for k, v in params.items() if k not in state.input_hashes}
    if step.cache:
        state.params_hash = keys.params_hash(step.name, hashed)
        state.key = keys.call_key(step.fingerprint, state.params_hash, state.input_hashes)
    else:
        state.params_hash = ""
        state.key = combine("uncached", step.fingerprint, os.urandom(16).hex())


def _call_deps(value: Any) -> list[CallNode]:
    from databacked.engine.graph import dependencies

    return [d for d in dependencies(value) if isinstance(d, CallNode)] + [
        c for d in dependencies(value) if not isinstance(d, CallNode) for c in d.children or []
    ]


def _input(handle: Handle, states: dict[int, CallState]) -> InputSpec:
    up = states[handle.node.id]
    name = handle.output or handle.node.step.output_names[0]
    if handle.output is None and handle.node.step.multi:
        raise PipelineError(
            f"Step {handle.node.step.name!r} has several outputs; pick one with "
            f"result[{handle.node.step.output_names[0]!r}]."
        )
    if not handle.node.step.persist:
        value = up.value[name] if handle.node.step.multi else up.value
        try:
            digest = hash_value(value)
        except (UnhashableValueError, TypeError) as exc:
            raise UnhashableValueError(
                f"Step {handle.node.step.name!r} (persist=False) returned a "
                f"{type(value).__name__} that databacked cannot hash for the keys of its "
                "dependants; return JSON-like data or arrays, or store it (persist=True)."
            ) from exc
        return InputSpec(hash=digest, value=value)
    record = up.records[name]
    return InputSpec(hash=record.hash, path=record.path, format=_format_spec(record))


def _as_file(step: Any, name: str, spec: InputSpec) -> InputSpec:
    """A command step's input arrives as a local file path, not as a loaded value."""
    if spec.path is not None and name in getattr(step, "input_names", ()):
        return replace(spec, format={"name": "local-file"})
    return spec


def _check_lossy(step: Any, arg: str, handle: Handle, states: dict[int, CallState]) -> None:
    upstream = handle.node.step
    if upstream.persist:
        output = handle.output or upstream.output_names[0]
        record = states[handle.node.id].records.get(output)
        lossy.check_input(step, arg, upstream, output, record)


def _format_spec(record: Any) -> dict[str, Any] | None:
    return {"name": record.format} if getattr(record, "format", None) else None


def _is_artifact(value: Any) -> bool:
    # an Artifact exists only once databacked.artifact is imported; no need to import it here
    artifact_type = getattr(sys.modules.get("databacked.artifact"), "Artifact", None)
    return artifact_type is not None and isinstance(value, artifact_type)


def output_specs(state: CallState) -> dict[str, OutputSpec]:
    step = state.node.step
    out = {}
    for name in step.output_names:
        fmt = step.formats.get(name)
        out[name] = OutputSpec(state.targets.get(name), fmt.spec() if fmt is not None else None)
    return out


__all__ = [
    "CallState",
    "check_conflicts",
    "compute_key",
    "output_specs",
    "render_targets",
    "upstream_ready",
]
