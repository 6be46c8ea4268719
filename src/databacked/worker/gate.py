"""What a worker agrees to run: the policy it was started with, and the gate that applies it.

A message names things by ``module:qualname``. The gate resolves a name only if its module
is one the worker may import -- databacked's own, those given with ``--import`` (or
``[worker] imports``, submodules included), and those whose files lie in the project folder
the worker started in -- and only if the object is of a kind a message may name: one of
databacked's entry points (:data:`ENTRY_POINTS`) as the function, an ``@db.step`` object or a
transform that one of the project's specs names as a reference, a dataclass as a value.
Anything else is a :class:`RefusedMessage` before it is imported, let alone called.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databacked.errors import RefusedMessage, SpecError, WireError
from databacked.executors.signing import KEY_VARIABLE, worker_key
from databacked.executors.wire import TAG, Decoder, split_reference

log = logging.getLogger("databacked.worker")

ENTRY_POINTS = frozenset(
    {
        "databacked.engine.worker:run_call",
        "databacked.engine.worker:run_batch",
        "databacked.specs.runner:run_task",
        "databacked.specs.transform:run_datum",
    }
)
"""The functions a message may ask a worker to call; they call steps and transforms only."""

_OWN = "databacked"
_INSTALLED = {"site-packages", "dist-packages"}


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    """How a worker was started: what it may import, whether pickle is allowed, its key."""

    imports: tuple[str, ...] = ()
    """Modules (and their submodules) whose steps and transforms may run."""
    project: Path | None = None
    """The project folder: its modules may run, its specs name the transforms."""
    allow_pickle: bool = False
    """Only when the worker itself was started with ``--allow-pickle``."""
    key: bytes | None = None
    """The shared HMAC key: messages must be signed with it."""

    @classmethod
    def from_settings(
        cls,
        imports: Iterable[str] = (),
        project: Path | None = None,
        allow_pickle: bool = False,
        key: str | bytes | None = None,
    ) -> WorkerPolicy:
        """The policy from arguments, then ``[worker]`` settings and the environment."""
        from databacked.config import load_settings

        section = getattr(load_settings(), "worker", None)
        configured = list(getattr(section, "imports", None) or [])
        # The environment wins over files, as everywhere in databacked's configuration.
        secret = (
            key
            if key is not None
            else os.environ.get(KEY_VARIABLE) or getattr(section, "key", None)
        )
        if hasattr(secret, "get_secret_value"):
            secret = secret.get_secret_value()
        return cls(
            imports=tuple(dict.fromkeys([*imports, *configured])),
            project=Path(project or os.getcwd()).resolve(),
            allow_pickle=allow_pickle,
            key=worker_key(secret),
        )


class Gate:
    """Resolves references for one message under a policy; refuses what it may not name."""

    def __init__(self, policy: WorkerPolicy) -> None:
        self.policy = policy
        self._transforms: list[Any] | None = None

    # --- modules ---------------------------------------------------------------------------

    def module_allowed(self, name: str) -> bool:
        """Whether a message may make this worker import ``name``."""
        if name == "__main__":
            return False
        prefixes = (_OWN, *self.policy.imports)
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return True
        return self._in_project(name.partition(".")[0])

    def _in_project(self, top: str) -> bool:
        project = self.policy.project
        if project is None:
            return False
        module = sys.modules.get(top)
        try:
            spec = module.__spec__ if module is not None else importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        places = list(spec.submodule_search_locations or []) or [spec.origin or ""]
        # Built-in and frozen modules have no file ("built-in"): never the project's.
        places = [p for p in places if p and os.path.isabs(p)]
        return bool(places) and all(_inside(Path(p), project) for p in places)

    # --- references --------------------------------------------------------------------------

    def resolve(self, ref: str, kind: str = "ref") -> Any:
        """The object ``ref`` names, if a message may name it as ``kind``; else refused."""
        try:
            module_name, parts = split_reference(ref)
        except WireError as exc:
            raise RefusedMessage(f"The call names {ref!r}: {exc}") from exc
        if not self.module_allowed(module_name):
            if not _findable(module_name):
                # Nothing to import, so nothing to refuse: the caller reports a missing module.
                raise ModuleNotFoundError(f"No module named {module_name!r}", name=module_name)
            raise RefusedMessage(
                f"The call names {ref!r}, but this worker may not import {module_name!r}; "
                f"start it with --import {module_name} (or [worker] imports), or in the "
                "project folder that holds it."
            )
        obj: Any = importlib.import_module(module_name)
        for part in parts:
            obj = getattr(obj, part)
        if kind == "dataclass":
            is_class = isinstance(obj, type) and dataclasses.is_dataclass(obj)
            if is_class and self.module_allowed(obj.__module__):
                return obj
            raise RefusedMessage(f"The call names {ref!r} as a dataclass, which it is not here.")
        if ref in ENTRY_POINTS or self._is_step(obj) or self._is_transform(obj):
            return obj
        raise RefusedMessage(
            f"The call names {ref!r}, which is not a databacked step or a spec's transform; "
            "this worker runs nothing else."
        )

    def function(self, encoded: Any, decoder: Decoder) -> Any:
        """The function a message's ``call.json`` names: an entry point, a step, a transform
        -- or, for a worker started with ``--allow-pickle``, a pickled one."""
        if isinstance(encoded, str):
            return self.resolve(encoded, "function")
        if isinstance(encoded, dict) and encoded.get(TAG) == "pickle" and self.policy.allow_pickle:
            return decoder.decode(encoded)
        raise RefusedMessage(
            f"The call's function is {type(encoded).__name__} data, not a 'module:qualname' "
            "reference; send a databacked entry point."
        )

    def _is_step(self, obj: Any) -> bool:
        from databacked.engine.step import Step

        return isinstance(obj, Step) and self.module_allowed(getattr(obj, "__module__", ""))

    def _is_transform(self, obj: Any) -> bool:
        if not callable(obj) or not self.module_allowed(getattr(obj, "__module__", "") or ""):
            return False
        for spec in self.specs():
            ref = spec.transform.python
            if ref is None:
                continue
            module_name, _, name = ref.partition(":")
            module = sys.modules.get(module_name)
            if module is not None and getattr(module, name, None) is obj:
                return True
        return False

    # --- arguments ---------------------------------------------------------------------------

    def check_arguments(self, values: Any) -> None:
        """Refuse calls and datums inside decoded arguments that the policy does not allow."""
        from databacked.engine.worker import CallSpec
        from databacked.specs.transform import DatumTask

        if isinstance(values, list | tuple):
            for value in values:
                self.check_arguments(value)
        elif isinstance(values, dict):
            for value in values.values():
                self.check_arguments(value)
        elif isinstance(values, CallSpec):
            self._check_call(values)
        elif isinstance(values, DatumTask):
            self._check_datum(values)

    def _check_call(self, spec: Any) -> None:
        if isinstance(spec.function, str):
            # The engine would import a text reference itself: resolve it here instead.
            object.__setattr__(spec, "function", self.resolve(spec.function, "function"))
        if self.policy.allow_pickle:
            return
        formats = [o.format for o in spec.outputs.values()]
        for source in spec.inputs.values():
            formats += [s.format for s in (source if isinstance(source, tuple) else (source,))]
        paths = [o.path for o in spec.outputs.values()]
        for source in spec.inputs.values():
            paths += [s.path for s in (source if isinstance(source, tuple) else (source,))]
        names = {str((f or {}).get("name", "")).lower() for f in formats if isinstance(f, dict)}
        if "pickle" in names or any(str(p).endswith((".pkl", ".pickle")) for p in paths if p):
            raise RefusedMessage(
                f"The call of step {spec.step!r} reads or writes Pickle files and this worker "
                "was not started with --allow-pickle; use a native format."
            )

    def _check_datum(self, task: Any) -> None:
        if task.function is not None:
            return  # decoded through resolve(): a step or a spec's transform
        for spec in self.specs():
            t = spec.transform
            if (
                spec.pipeline == task.pipeline
                and t.cmd is not None
                and tuple(t.cmd) == tuple(task.cmd)
                and tuple(t.stdin or ()) == tuple(task.stdin)
                and dict(t.env) == dict(task.env)
            ):
                # The command runs where this worker's project is, not where a message says.
                object.__setattr__(task, "cwd", str(self.policy.project))
                return
        raise RefusedMessage(
            f"The datum's command for pipeline {task.pipeline!r} is not the transform of a "
            "spec in this worker's project folder; start the worker in the project folder."
        )

    def specs(self) -> list[Any]:
        """The specs of the project folder (``pipelines/``), read once per message."""
        if self._transforms is None:
            self._transforms = _project_specs(self.policy.project)
        return self._transforms


def _project_specs(project: Path | None) -> list[Any]:
    if project is None:
        return []
    from databacked.specs.loading import load_specs, spec_files

    for folder in (project / "pipelines", project):
        try:
            if folder.is_dir() and spec_files(folder):
                return load_specs(folder)
        except SpecError as exc:
            log.warning("The worker cannot read the specs in %s: %s", folder, exc)
            return []
    return []


def _findable(module_name: str) -> bool:
    top = module_name.partition(".")[0]
    try:
        return top in sys.modules or importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        resolved = path.resolve()
    except OSError:
        return False
    if _INSTALLED.intersection(resolved.parts):
        return False  # a virtualenv inside the project is installed code, not the project's
    return resolved == folder or folder in resolved.parents


__all__ = ["ENTRY_POINTS", "Gate", "WorkerPolicy"]
