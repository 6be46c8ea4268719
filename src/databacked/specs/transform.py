"""Running one datum's transform: lay its files out, call Python or a command, upload outputs.

Both kinds see the datum the same way. Its files are laid out under a temporary
``input_dir`` as in their repos (``<input name>/<path in repo>``; hard links or copies for a
local store, downloads from an object store), and the transform writes into an empty
``output_dir``. Every file left in ``output_dir`` is uploaded atomically (``Store.put_file``)
to ``<pipeline>/<its path under output_dir>``: the pipeline's output repo, laid out as the
transform wrote it. Two datums writing the same output path is an error (the runner fails
the later one), so a transform writes under a name of its own datum (``{plate}/...``).

``python: module:function`` is called with the keyword arguments its signature asks for, out
of: ``files`` (``dict[layout path, Path]``), ``input_dir``, ``output_dir`` (``Path``),
``datum`` (the id), ``group``, ``attributes`` (dict), and each named capture by name
(``plate``, ``well``...). It may return ``None`` (it wrote files), or ``{name: value}``: each
value is written with the format of the name's extension (or ``output.format``), the name
filled like a command's placeholders. A non-dict value needs ``output.target``.

``cmd: [...]`` runs without a shell. Placeholders ``{input_dir}``, ``{output_dir}``,
``{datum}``, ``{group}``, named captures (``{plate}``) and numbered ones (``{1}``) are filled
in, each argument staying one argv element whatever the value holds; the same values are in
the environment as ``DATABACKED_INPUT_DIR``, ``DATABACKED_OUTPUT_DIR``, ``DATABACKED_DATUM``,
``DATABACKED_GROUP``, ``DATABACKED_<NAME>`` and ``DATABACKED_<N>``. Values come from file
names, so in ``stdin:`` lines (shell code) they are shell-quoted (``shlex.quote``): a file
named ``$(rm -rf ~)`` is a name, never a command. A symlink the command leaves in
``output_dir`` that points outside it is refused. A non-zero exit (not in
``accept_return_code``) fails the datum with its stderr tail.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databacked.engine import capture
from databacked.errors import SpecError
from databacked.formats.base import ArtifactRecord
from databacked.formats.registry import format_for_path, get_format, resolve_format
from databacked.specs.globs import compile_glob
from databacked.specs.scratch import scratch
from databacked.store import Store

if TYPE_CHECKING:  # workers import this module: no pydantic there
    from databacked.specs.datums import Datum
    from databacked.specs.model import Spec

TAIL = 4000
"""Characters of a transform's stdout and stderr kept with its outcome (and of a failed
command's stderr in its error message); the whole of both goes to the call's log."""
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class DatumTask:
    """Everything a worker needs to run one datum; picklable, no catalog."""

    key: str
    pipeline: str
    datum: str
    files: tuple[tuple[str, str], ...]
    """(path in the store, layout path under input_dir) per file."""
    values: dict[str, str] = field(default_factory=dict)
    """Placeholder values: group, named captures, numbered captures ("1", "2"...)."""
    function: Callable[..., Any] | None = None
    cmd: tuple[str, ...] = ()
    stdin: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    accept_return_code: tuple[int, ...] = ()
    output_format: dict[str, Any] | None = None
    output_target: str | None = None
    cwd: str | None = None
    """Working folder of a command (the project folder), so relative script paths work."""
    container: Any = None
    """``containers.Container`` when ``transform.image`` is set: the command runs in it."""


@dataclass(frozen=True, slots=True)
class DatumOutcome:
    """What a worker reports about one datum."""

    key: str
    status: str
    """``ok`` or ``failed``."""
    records: dict[str, ArtifactRecord] = field(default_factory=dict)
    """Path inside the output repo -> what was written."""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    started: float = 0.0
    finished: float = 0.0
    pid: int = 0


def run_datum(task: DatumTask, store: Store) -> DatumOutcome:
    """Run one datum in a scratch folder; never raises for a failure of the transform."""
    started = time.time()
    out = err = ""
    try:
        with scratch([layout for _path, layout in task.files]) as folder:  # kept per worker
            input_dir = folder / "in"
            output_dir = folder / "out"
            laid = lay_out(store, task.files, input_dir)
            if task.function is not None:
                returned, out, err = _call_python(task, laid, input_dir, output_dir)
                formats = _write_returned(task, returned, output_dir)
            else:
                out, err = _run_cmd(task, input_dir, output_dir)
                formats = {}
            records = upload(store, task.pipeline, output_dir, formats)
        return DatumOutcome(
            task.key, "ok", records, stdout=out, stderr=err, started=started,
            finished=time.time(), pid=os.getpid(),
        )  # fmt: skip
    except Exception as exc:
        stderr = getattr(exc, "stderr_tail", err)
        return DatumOutcome(
            task.key,
            "failed",
            error_type=type(exc).__name__,
            error_message=str(exc) or type(exc).__name__,
            traceback=traceback.format_exc(),
            stdout=getattr(exc, "stdout_tail", out),
            stderr=stderr,
            started=started,
            finished=time.time(),
            pid=os.getpid(),
        )


def lay_out(store: Store, files: tuple[tuple[str, str], ...], input_dir: Path) -> dict[str, Path]:
    """Place each store file at ``input_dir/<layout path>``: hard link, copy or download."""
    laid = {}
    for store_path, layout in files:
        target = input_dir / layout
        target.parent.mkdir(parents=True, exist_ok=True)
        local = store.local_path(store_path)
        try:
            if local is not None:
                try:
                    os.link(local, target)  # same filesystem: no bytes copied
                except OSError:
                    shutil.copyfile(local, target)
            else:
                with store.open(store_path) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError as exc:  # ArtifactNotFound is one too
            raise InputVanished(
                f"input file {store_path} disappeared before its datum ran; the next run "
                "matches what is there."
            ) from exc
        laid[layout] = target
    return laid


def upload(
    store: Store, pipeline: str, output_dir: Path, formats: Mapping[str, str] | None = None
) -> dict[str, ArtifactRecord]:
    """Put every file under ``output_dir`` into the pipeline's repo; records by repo path.

    ``formats`` names the format of files written from returned values; the others get the
    format of their extension, else ``"file"``.
    """
    records = {}
    for local in _output_files(output_dir, pipeline):
        rel = local.relative_to(output_dir).as_posix()
        written = store.put_file(f"{pipeline}/{rel}", local)
        fmt = format_for_path(rel)
        name = (formats or {}).get(rel) or (fmt.name if fmt is not None else "file")
        records[rel] = ArtifactRecord(
            path=written.path,
            hash=written.hash,
            size=written.size,
            format=name,
            stamp=written.stamp,
        )
    return records


def _output_files(output_dir: Path, pipeline: str) -> list[Path]:
    """The files under ``output_dir``, sorted; a symlink pointing out of it is a SpecError, so
    a transform cannot smuggle ``/etc/passwd`` or the worker's keys into the store."""
    root = output_dir.resolve()
    found = []
    for folder, dirs, names in os.walk(output_dir):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            if not path.is_symlink():
                if name in names:
                    found.append(path)
                continue
            target = path.resolve()
            if target != root and root not in target.parents:
                raise SpecError(
                    f"pipeline '{pipeline}': the transform left a symlink "
                    f"{path.relative_to(output_dir).as_posix()!r} pointing outside its output "
                    f"folder (to {os.readlink(path)!r}); write files, not links to elsewhere."
                )
            if target.is_file():
                found.append(path)  # a link inside output_dir: upload the bytes it names
    return sorted(found)


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders that have a value; other braces stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


# --- python ---------------------------------------------------------------------------------


def _call_python(
    task: DatumTask, laid: dict[str, Path], input_dir: Path, output_dir: Path
) -> tuple[Any, str, str]:
    """Call the function with the arguments it names; returns (value, stdout, stderr tails)."""
    assert task.function is not None
    available: dict[str, Any] = {
        key: value for key, value in task.values.items() if not key.isdigit()
    }
    available.update(
        files=laid,
        input_dir=input_dir,
        output_dir=output_dir,
        datum=task.datum,
        group=task.values.get("group"),
        attributes={k: v for k, v in task.values.items() if not k.isdigit() and k != "group"},
    )
    params = inspect.signature(task.function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = available
    else:
        kwargs = {name: available[name] for name in params if name in available}
    out, err = io.StringIO(), io.StringIO()
    if threading.current_thread() is not threading.main_thread():
        # redirecting sys.stdout is process-wide: a thread pool's calls would mix their output
        return task.function(**kwargs), "", ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        value = task.function(**kwargs)
    _keep_output(out.getvalue(), err.getvalue())
    return value, out.getvalue()[-TAIL:], err.getvalue()[-TAIL:]


def _write_returned(task: DatumTask, returned: Any, output_dir: Path) -> dict[str, str]:
    """Write returned values into output_dir; their format names by path."""
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        if task.output_target is None:
            raise SpecError(
                f"the transform of pipeline '{task.pipeline}' returned a "
                f"{type(returned).__name__} for datum {task.datum}; return {{file name: value}}, "
                "write into output_dir, or set output.target in the spec."
            )
        returned = {task.output_target: returned}
    scratch = Store(output_dir, durability="none")
    written = {}
    for name, value in returned.items():
        rel = scratch.check_path(fill(str(name), {"datum": task.datum, **task.values}))
        # output.format says how returned values are written; else the name's extension
        fmt = get_format(task.output_format) if task.output_format else resolve_format(rel, value)
        fmt.write(value, scratch, rel)
        written[rel] = fmt.name
    return written


# --- cmd ------------------------------------------------------------------------------------


def _run_cmd(task: DatumTask, input_dir: Path, output_dir: Path) -> tuple[str, str]:
    input_dir.mkdir(parents=True, exist_ok=True)
    values = {
        **task.values,
        "input_dir": str(input_dir),
        "output_dir": str(output_dir),
        "datum": task.datum,
    }
    argv = [fill(arg, values) for arg in task.cmd]
    env = dict(os.environ)
    env.update({k: fill(v, values) for k, v in task.env.items()})
    env.update(
        DATABACKED_INPUT_DIR=str(input_dir),
        DATABACKED_OUTPUT_DIR=str(output_dir),
        DATABACKED_DATUM=task.datum,
    )
    for name, value in task.values.items():
        # Captures reach the command as data too: "$DATABACKED_WELL" needs no quoting rules.
        env[f"DATABACKED_{name.upper()}"] = value
    # stdin lines are shell code: a value (a file name) goes in as one quoted word.
    quoted = {name: shlex.quote(value) for name, value in values.items()}
    stdin = "".join(fill(line, quoted) + "\n" for line in task.stdin) if task.stdin else None
    if task.container is not None:  # the same command, inside the spec's image
        argv, env = task.container.wrap(argv, env, task, input_dir, output_dir)
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, cwd=task.cwd or output_dir,
            check=False,
        )  # fmt: skip
    except OSError as exc:
        raise SpecError(
            f"pipeline '{task.pipeline}', datum {task.datum}: cannot start command "
            f"'{argv[0]}' ({exc.strerror or exc}); install it or fix transform.cmd."
        ) from exc
    _keep_output(done.stdout, done.stderr)
    out, err = done.stdout[-TAIL:], done.stderr[-TAIL:]
    if done.returncode != 0 and done.returncode not in task.accept_return_code:
        failure = CommandFailed(
            f"pipeline '{task.pipeline}', datum {task.datum}: command '{argv[0]}' exited with "
            f"code {done.returncode}; stderr: {err.strip() or '(empty)'}"
        )
        failure.stderr_tail = err
        failure.stdout_tail = out
        raise failure
    return out, err


def _keep_output(stdout: str, stderr: str) -> None:
    """The whole of what a transform printed, into the log of the call running it (the
    store's ``.databacked/logs/<key>.log``); the outcome keeps only tails."""
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            capture.add(f"--- {name} ---\n{text}" + ("" if text.endswith("\n") else "\n"))


class InputVanished(Exception):
    """An input file was removed between planning and running its datum."""


class CommandFailed(Exception):
    """A ``cmd`` transform exited non-zero; the message carries its stderr tail."""

    stderr_tail: str = ""
    stdout_tail: str = ""


# --- placeholders (driver side) --------------------------------------------------------------


def placeholder_values(spec: Spec, datum: Datum) -> dict[str, str]:
    """Values for placeholders: named captures, ``group``, numbered captures of the first file."""
    values = dict(datum.attributes)
    if datum.group is not None:
        values["group"] = datum.group
    if datum.files:
        first = datum.files[0]
        for pfs in spec.input.pfs_inputs():
            if pfs.input_name != first.input or pfs.repo != first.repo:
                continue
            regex = compile_glob(pfs.glob, pfs.names).regex
            parts = first.path.split("/")
            for depth in range(1, len(parts) + 1):
                match = regex.match("/" + "/".join(parts[:depth]))
                if match is not None:
                    values.update({str(i): g or "" for i, g in enumerate(match.groups(), 1)})
                    break
            break
    return values


__all__ = [
    "DatumOutcome",
    "DatumTask",
    "fill",
    "lay_out",
    "placeholder_values",
    "run_datum",
    "upload",
]
