"""The ``databacked`` command line (typer + rich); ``main`` is the console-script entry."""

from __future__ import annotations

from typing import NoReturn


def main() -> NoReturn:
    """Entry point of the ``databacked`` console script."""
    import sys

    from databacked.cli.app import for_argv

    code: object = 0
    try:
        for_argv(sys.argv[1:])(prog_name="databacked")
    except SystemExit as exc:
        code = exc.code
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or debugger writes what it found once this returns
    _exit(code)


def _exit(code: object) -> NoReturn:
    """End the process once the command is done: other threads joined, ``atexit`` handlers
    run (logging, loky, finalizers), streams flushed; then ``os._exit``. The interpreter's
    own teardown of every module (SQLAlchemy's alone ~50 ms) would only free memory the
    operating system takes back anyway. Under a profiler or debugger, ``main`` returns
    normally instead, so that it can write what it found."""
    import atexit
    import contextlib
    import os
    import sys
    import threading

    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    status = code if isinstance(code, int) else 0 if code is None else 1
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()  # what a normal exit runs before tearing modules down
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head)
                stream.flush()
        os._exit(status)


__all__ = ["main"]
