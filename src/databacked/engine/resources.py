"""Resources: what one call needs at once, what the machine can give, and who has what.

A step asks with ``resources={"cpus": 2, "memory": "4GB", "gpus": 1}`` (a spec with
``resources``/``resource_requests``: ``cpu``, ``memory``, ``gpu``). Capacities come from
``db.run(..., resources=...)``, ``--resources`` or ``[resources]`` in ``databacked.toml``;
what is not given is detected: cpus = cores, memory = RAM, gpus from
``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``, else 0. The dispatcher never lets the calls
running at once ask for more than the capacities, and a call asking for more than they hold
is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from databacked.errors import PipelineError
from databacked.executors.base import RESOURCE_KINDS as KINDS
from databacked.executors.base import resource_kind

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgtp]?)(i?)b?\s*", re.IGNORECASE)


def parse(needs: Mapping[str, Any] | None, owner: str = "resources") -> dict[str, float]:
    """``{"cpus": 2, "memory": "4GB"}`` -> ``{"cpus": 2.0, "memory": 4e9}``; bad -> one sentence."""
    out: dict[str, float] = {}
    for name, value in (needs or {}).items():
        kind = resource_kind(name)
        if value is None:
            continue
        if kind not in KINDS:
            raise PipelineError(
                f"{owner} names an unknown resource {name!r}; use cpus, memory or gpus."
            )
        amount = size(value) if kind == "memory" else _number(value)
        if amount is None or amount < 0:
            raise PipelineError(
                f"{owner} asks for {name}={value!r}; give a number"
                + (" or a size such as '4GB'." if kind == "memory" else ".")
            )
        if amount:
            out[kind] = amount
    return out


def size(value: Any) -> float | None:
    """Bytes of ``4GB`` / ``512MiB`` / ``1e9``; None when it is not a size."""
    if isinstance(value, int | float):
        return float(value)
    match = _SIZE.fullmatch(str(value))
    if not match:
        return None
    number, prefix, binary = match.groups()
    base = 1024.0 if binary else 1000.0
    return float(number) * base ** ("kmgtp".find(prefix.lower()) + 1) if prefix else float(number)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def detect() -> dict[str, float]:
    """What this machine has: cores, RAM and GPUs."""
    found = {"cpus": float(os.cpu_count() or 1), "gpus": float(_gpus())}
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not POSIX
        found["memory"] = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return found


def _gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


class Pool:
    """Capacities and what the running calls hold of them."""

    def __init__(self, given: Mapping[str, Any] | None = None) -> None:
        self.capacity = {**detect(), **parse(given, "The resource capacities")}
        self.used = dict.fromkeys(self.capacity, 0.0)

    def check(self, owner: str, needs: Mapping[str, float]) -> None:
        """Refuse, before anything runs, a call that no capacity can ever hold."""
        for kind, amount in needs.items():
            have = self.capacity.get(kind, 0.0)
            if amount > have:
                raise PipelineError(
                    f"{owner} asks for {kind}={_show(kind, amount)} but at most "
                    f"{_show(kind, have)} can be given; lower the request or raise the capacity "
                    f"(db.run(resources=...), --resources {kind}=N or [resources] in "
                    "databacked.toml)."
                )

    def fits(self, needs: Mapping[str, float]) -> bool:
        return all(self.used.get(k, 0.0) + v <= self.capacity.get(k, 0.0) for k, v in needs.items())

    def take(self, needs: Mapping[str, float]) -> None:
        for kind, amount in needs.items():
            self.used[kind] = self.used.get(kind, 0.0) + amount

    def give(self, needs: Mapping[str, float]) -> None:
        for kind, amount in needs.items():
            self.used[kind] = max(0.0, self.used.get(kind, 0.0) - amount)


def _show(kind: str, amount: float) -> str:
    if kind == "memory":
        return f"{amount / 1e9:.3g}GB"
    return f"{amount:g}"


__all__ = ["KINDS", "Pool", "detect", "parse", "size"]
