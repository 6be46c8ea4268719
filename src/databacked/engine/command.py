"""``db.command``: a command line (CellProfiler, any tool) as a cached pipeline step.

What Snakemake users write as a rule with ``input:``, ``output:`` and ``shell:``::

    @db.pipeline
    def screen(plates: list[str]):
        for plate in plates:
            db.command(
                ["cellprofiler", "-c", "-r", "-p", "site.cppipe", "-i", "{images}", "-o",
                 "{output_dir}"],
                inputs={"images": f"raw/{plate}.txt"},     # a file list, hashed by content
                outputs={"table": "measure/{plate}.csv"},  # written as {output_dir}/<plate>.csv
                params={"plate": plate},
            )

It is a step like any other, so it has the same key (the command, its parameters, the
content of its input files and of project files named in the command), the same cache,
retries, leases, captured output and lineage. The command runs without a shell: each
argument is one argv entry, with ``{name}`` filled from inputs (their local paths),
outputs (where the command must write them), params, ``{output_dir}`` and ``{input_dir}``.
Inputs are local paths (``db.File``), Artifacts, or other steps' results (their files).
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from databacked.engine.graph import current_graph
from databacked.engine.step import Step
from databacked.errors import PipelineError
from databacked.formats.files import FileCopy

TAIL = 2000
"""Characters of stderr quoted in the error of a failed command."""


class CommandFailed(RuntimeError):
    """The command exited with a code other than 0 (its stderr tail is in the message)."""


class CommandStep(Step):
    """A Step whose inputs are files: hashed by content, handed over as local paths."""

    def __init__(self, inputs: Sequence[str], **options: Any) -> None:
        super().__init__(run_command, **options)
        self.input_names = frozenset(inputs)

    def file_params(self) -> set[str]:
        return set(self.input_names)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        # run_command takes **values: its call arguments are the names as given, flat
        return dict(kwargs)


def command(
    cmd: Sequence[str],
    *,
    outputs: Mapping[str, str],
    inputs: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    version: str | int | None = None,
    env: Mapping[str, str] | None = None,
    accept_return_code: Sequence[int] = (),
    retries: int = 0,
    retry_delay: float = 0.0,
) -> Any:
    """Add one command call to the pipeline being traced; returns a handle to its output
    (one output) or to all of them (``result["table"]`` picks one)."""
    if current_graph() is None:
        raise PipelineError(
            "db.command(...) adds a step to a pipeline: call it inside a @db.pipeline "
            "function, then db.run(pipeline)."
        )
    argv = [str(a) for a in cmd]
    if not argv:
        raise PipelineError("db.command needs a command: a list such as ['cellprofiler', '-c'].")
    inputs, params = dict(inputs or {}), dict(params or {})
    if not outputs:
        raise PipelineError(f"db.command {argv[0]!r} needs outputs={{name: target in the store}}.")
    clash = (set(inputs) & set(params)) | (set(outputs) & (set(inputs) | set(params)))
    reserved = {"input_dir", "output_dir"} & (set(inputs) | set(params) | set(outputs))
    if clash or reserved or any(not n.isidentifier() for n in (*inputs, *params, *outputs)):
        raise PipelineError(
            f"db.command {argv[0]!r}: input, output and param names must be distinct Python "
            f"names other than input_dir/output_dir ({sorted(clash | reserved)} clash)."
        )
    step = CommandStep(
        inputs,
        targets=dict(outputs),
        format={key: FileCopy() for key in outputs},
        name=name or _name(argv[0]),
        version=version,
        retries=retries,
        retry_delay=retry_delay,
    )
    handle = step(
        **inputs,
        **params,
        _argv=argv,
        _outputs={k: Path(str(v)).name for k, v in outputs.items()},
        _env=dict(env or {}),
        _accept=sorted({0, *accept_return_code}),
        _deps=_project_files(argv),
    )
    return handle[next(iter(outputs))] if len(outputs) == 1 else handle


def run_command(
    _argv: list[str],
    _outputs: dict[str, str],
    _env: dict[str, str] | None = None,
    _accept: list[int] | None = None,
    _deps: dict[str, str] | None = None,
    **values: Any,
) -> dict[str, Path]:
    """Run on a worker: fill the placeholders, run without a shell, return the outputs."""
    scratch = _Scratch()
    out_dir = scratch.path / "out"
    out_dir.mkdir()
    fields: dict[str, str] = {"output_dir": str(out_dir), "input_dir": str(scratch.path)}
    for key, value in values.items():
        fields[key] = _local(value)
    # file names of the targets, rendered as the targets are (from the params)
    produced = {name: out_dir / _fill(filename, fields) for name, filename in _outputs.items()}
    fields.update({k: str(v) for k, v in produced.items()})
    argv = [_fill(arg, fields) for arg in _argv]
    env = {**os.environ, **(_env or {}), "DATABACKED_OUTPUT_DIR": str(out_dir)}
    try:
        proc = subprocess.run(  # an argv list, no shell
            argv, capture_output=True, text=True, env=env, check=False
        )
    except FileNotFoundError as exc:
        raise CommandFailed(
            f"command {argv[0]!r} not found on this worker's PATH; install it there."
        ) from exc
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode not in (_accept or [0]):
        tail = proc.stderr.strip()[-TAIL:] or proc.stdout.strip()[-TAIL:]
        raise CommandFailed(f"{argv[0]} exited with code {proc.returncode}: {tail}")
    missing = [str(p) for p in produced.values() if not p.is_file()]
    if missing:
        raise CommandFailed(
            f"{argv[0]} exited 0 but did not write {', '.join(missing)}; write each output "
            "to its {name} placeholder (or {output_dir}/<file name of its target>)."
        )
    return {name: _Produced(path, scratch) for name, path in produced.items()}


class _Scratch:
    """A temporary folder removed once nothing refers to it (after the outputs are stored)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="databacked-cmd-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)


class _Produced(os.PathLike[str]):
    """A produced file's path that keeps its scratch folder alive until it is stored."""

    def __init__(self, path: Path, scratch: _Scratch) -> None:
        self.path, self.scratch = path, scratch

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _local(value: Any) -> str:
    """The local path of an input: a path, an Artifact (downloaded if remote), or a value."""
    store = getattr(value, "store", None)
    if store is not None and hasattr(value, "path"):
        from databacked.formats.files import LocalFile

        return str(LocalFile().read(store, value.path))
    return str(value)


class _Leave(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(arg: str, fields: dict[str, str]) -> str:
    """``{name}`` filled; unknown or malformed braces stay as written (a tool's own syntax)."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(arg) if f]
    except ValueError:
        return arg
    if not names or any(not n.isidentifier() for n in names):
        return arg
    return arg.format_map(_Leave(fields))


def _project_files(argv: list[str]) -> dict[str, str]:
    """Content hashes of relative arguments naming files here (a .cppipe): edits re-run."""
    from databacked.hashing import hash_file

    found: dict[str, str] = {}
    for arg in argv[1:]:
        if "{" in arg or os.path.isabs(arg) or len(arg) > 255:
            continue
        path = Path(arg)
        if path.is_file():
            found[arg] = hash_file(path)
    return found


def _name(program: str) -> str:
    stem = Path(program).name.split(".")[0]
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return cleaned or "command"


__all__ = ["CommandFailed", "CommandStep", "command", "run_command"]
