"""A task in a child process of its worker, where a timer can stop a call.

Dask runs tasks in worker threads, and no signal interrupts a thread, so the timer that stops
a call at its timeout (``engine.worker.deadline``, SIGALRM) cannot work there. A dask task
whose calls have timeouts therefore runs in a fresh child process of its dask worker
(``python -m databacked.executors.child``): the calls run in the child's main thread, each
stopped at its own timeout (failed with ``timeout after N s``) while the child goes on with
the next call. A child still running ``limit`` seconds after it started -- a call stuck in C
code, which the timer cannot interrupt -- is killed, and the task fails with ``CallTimeout``
(``Placement.overrun``).

The function and its arguments travel to the child as cloudpickle on its stdin, the result
back on its stdout: the child trusts its parent, which had already unpickled them from dask.
A child whose parent dies (the dask worker killed) ends itself, so nothing it would write
outlives the worker that owed the result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from databacked.errors import ExecutorError
from databacked.executors.base import Placement

PARENT_POLL = 1.0
"""Seconds between the child's looks at whether its parent is still alive."""


def run_in_child(placement: Placement, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a child process, killed past ``placement.limit`` seconds."""
    import cloudpickle

    payload = cloudpickle.dumps((fn, args))
    env = dict(os.environ)
    # The child imports what this process can (its path may have grown at run time).
    paths = [p or os.getcwd() for p in sys.path if isinstance(p, str)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    command = [sys.executable, "-m", "databacked.executors.child"]
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        raise ExecutorError(
            f"Could not start a child process ({sys.executable}) to run a call with a "
            f"timeout: {exc}; check the worker's process limits."
        ) from exc
    try:
        out, _ = proc.communicate(payload, timeout=placement.limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise placement.overrun() from None
    if proc.returncode != 0 or not out:
        code = proc.returncode
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        raise ExecutorError(
            f"The child process (pid {proc.pid}) running a call with a timeout {how}; check "
            "the worker's memory, or the call's own exits."
        )
    ok, value = cloudpickle.loads(out)
    if not ok:
        raise value
    return value


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _end_with_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL)
        if os.getppid() != parent:
            os._exit(1)


def main() -> int:
    """The child: read ``(fn, args)``, run it in this main thread, write ``(ok, value)``."""
    import cloudpickle

    # The answer owns file descriptor 1: what the call prints goes to stderr instead.
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    fn, args = cloudpickle.loads(sys.stdin.buffer.read())
    try:
        result: tuple[bool, Any] = (True, fn(*args))
    except Exception as exc:  # the task's own failure: raised again in the parent
        exc.add_note(f"Traceback in the child process:\n{traceback.format_exc()}")
        result = (False, exc)
    try:
        data = cloudpickle.dumps(result)
    except Exception as exc:  # an unpicklable result or exception
        data = cloudpickle.dumps(
            (False, ExecutorError(f"The result of a call could not be sent back: {exc}."))
        )
    with answer:
        answer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
