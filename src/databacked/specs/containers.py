"""Containers for ``cmd`` transforms: ``transform.image`` runs the command inside an image.

Seed 004 keeps "containers for steps & uses them for the run record". The image is resolved
once, on the driver, to a content digest (``docker|podman image inspect``, or the sha256 of
an Apptainer ``.sif`` file); the digest joins the transform's fingerprint, so a new image is
new code and its datums run again, and it is what the catalog, the run record and the
RO-Crate name. On the worker the command runs through the configured runtime
(``[containers] runtime = "docker" | "podman" | "apptainer"``) with the datum's input folder
mounted read-only and its output folder read-write; ``{input_dir}`` and ``{output_dir}`` are
the paths inside the container. No shell is involved: the runtime gets an argument list.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from databacked.errors import ConfigError, SpecError

if TYPE_CHECKING:
    from databacked.specs.model import Spec
    from databacked.specs.transform import DatumTask

INPUT_DIR = "/databacked/in"
"""Where a datum's input folder is mounted inside the container (read-only)."""
OUTPUT_DIR = "/databacked/out"
"""Where the output folder is mounted (read-write)."""
PROJECT_DIR = "/databacked/project"
"""Where the project folder is mounted (read-only), and the working folder, for scripts."""
RUNTIMES = ("docker", "podman", "apptainer")


@dataclass(frozen=True, slots=True)
class Container:
    """An image resolved to its digest, and the runtime that runs it."""

    runtime: str
    """``docker``, ``podman`` or ``apptainer``."""
    executable: str
    """The runtime's program (a name on PATH or a path)."""
    image: str
    """The image as the spec names it."""
    digest: str
    """``sha256:<hex>``: the image ID (docker, podman) or the .sif file's sha256 (apptainer)."""

    @property
    def reference(self) -> str:
        """What runs and what is recorded: the image pinned to its digest."""
        if self.runtime == "apptainer":
            return self.image
        return self.digest

    def describe(self) -> dict[str, str]:
        """JSON-able record of the image, for the catalog, run records and RO-Crate."""
        return {"runtime": self.runtime, "image": self.image, "digest": self.digest}

    def wrap(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        task: DatumTask,
        input_dir: Path,
        output_dir: Path,
    ) -> tuple[list[str], dict[str, str]]:
        """The runtime's argument list and environment that run ``argv`` in the image.

        ``argv`` and ``env`` were filled with host folders; those become the mount points.
        The command gets the transform's ``env`` and the datum's DATABACKED_* variables, and
        nothing else of the host's environment (no credentials leak into images).
        """
        cwd = task.cwd
        pass_env = [
            *task.env,
            *("DATABACKED_INPUT_DIR", "DATABACKED_OUTPUT_DIR", "DATABACKED_DATUM"),
            *(f"DATABACKED_{n.upper()}" for n in task.values if not n.isdigit()),
        ]
        host = {str(input_dir): INPUT_DIR, str(output_dir): OUTPUT_DIR}
        if cwd:
            host[str(cwd)] = PROJECT_DIR
        inside = [_to_container(arg, host) for arg in argv]
        values = {k: _to_container(env[k], host) for k in pass_env if k in env}
        out_env = dict(env)
        if self.runtime == "apptainer":
            args = [self.executable, "exec", "--containall", "--no-home"]
            args += [
                "--bind",
                f"{input_dir}:{INPUT_DIR}:ro",
                "--bind",
                f"{output_dir}:{OUTPUT_DIR}:rw",
            ]
            if cwd:
                args += ["--bind", f"{cwd}:{PROJECT_DIR}:ro", "--pwd", PROJECT_DIR]
            out_env.update({f"APPTAINERENV_{k}": v for k, v in values.items()})
            return [*args, self.reference, *inside], out_env
        args = [self.executable, "run", "--rm", "-i"]
        if hasattr(os, "getuid"):  # outputs belong to the user, not root
            args += ["--user", f"{os.getuid()}:{os.getgid()}"]
        args += ["-v", f"{input_dir}:{INPUT_DIR}:ro", "-v", f"{output_dir}:{OUTPUT_DIR}:rw"]
        if cwd:
            args += ["-v", f"{cwd}:{PROJECT_DIR}:ro", "-w", PROJECT_DIR]
        for name in sorted(values):
            args += ["-e", name]  # the value travels in the environment, not on the command line
        out_env.update(values)
        return [*args, self.reference, *inside], out_env


def _to_container(text: str, host: Mapping[str, str]) -> str:
    for path, inside in sorted(host.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, inside)
    return text


def settings_runtime() -> tuple[str, str]:
    """(runtime, program) from ``[containers]`` in the configuration."""
    from databacked.config import load_settings

    section = load_settings().containers
    runtime = str(section.runtime)
    if runtime not in RUNTIMES:
        raise ConfigError(
            f"containers.runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}."
        )
    return runtime, str(section.executable or runtime)


def for_spec(spec: Spec) -> Container | None:
    """The spec's container, its image pinned to the digest it has now; None without one."""
    image = spec.transform.image
    if not image:
        return None
    if spec.transform.cmd is None:
        raise SpecError(
            f"pipeline '{spec.pipeline}': transform.image runs a 'cmd' transform; a 'python' "
            "transform runs in databacked's own environment (remove image or use cmd)."
        )
    runtime, executable = settings_runtime()
    return resolve(image, runtime, executable)


def resolve(image: str, runtime: str, executable: str) -> Container:
    """Pin ``image`` to its digest with ``runtime`` (pulling it when it is not here yet)."""
    if runtime == "apptainer":
        return Container(runtime, executable, image, _sif_digest(image))
    if "@sha256:" in image:
        return Container(runtime, executable, image, image.rsplit("@", 1)[1])
    digest = _inspect(executable, image)
    if digest is None:
        _run([executable, "pull", image], f"pull the image {image!r}")
        digest = _inspect(executable, image)
    if digest is None or not digest.startswith("sha256:"):
        raise ConfigError(f"{runtime} gave no digest for the image {image!r}; check its name.")
    return Container(runtime, executable, image, digest)


def _inspect(executable: str, image: str) -> str | None:
    try:
        done = subprocess.run(
            [executable, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise ConfigError(
            f"Cannot start the container runtime {executable!r} ({exc.strerror or exc}); "
            "install it or set [containers] runtime / executable in databacked.toml."
        ) from exc
    out = done.stdout.strip()
    return out.splitlines()[0] if done.returncode == 0 and out else None


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    except OSError as exc:
        raise ConfigError(f"Cannot {what}: {exc.strerror or exc}.") from exc
    if done.returncode != 0:
        raise ConfigError(f"Cannot {what}: {done.stderr.strip()[-500:] or done.returncode}.")


def _sif_digest(image: str) -> str:
    path = Path(image)
    if "://" in image or not path.is_file():
        raise ConfigError(
            f"Apptainer images are named by a local .sif file; {image!r} is not one "
            "(build or pull it first: apptainer pull image.sif docker://...)."
        )
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


__all__ = ["INPUT_DIR", "OUTPUT_DIR", "PROJECT_DIR", "Container", "for_spec", "resolve"]
