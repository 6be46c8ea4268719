"""Lane processes that stay up: one per worker slot, fed one lane's tar after another.

Starting the script (Python, pandas, matplotlib, the user's imports) can cost as much as a
lane's analysis, so a local run keeps each lane process it starts and hands it the next
lane: the same tar an orchestrator sends, framed by length on stdin, the same answer tar
framed with its exit code on a pipe of its own (so nothing the script prints can corrupt
it). A lane that fails answers its ``error`` entry and the process goes on; a process that
dies fails only its current lane.

Frames: request = 8-byte big-endian length + tar; answer = ``ARL1`` + 4-byte exit code +
8-byte length + tar. End of stdin ends the process (exit 0).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

MAGIC = b"ARL1"
SERVE_ENV = "ANALYSISRUN_LANE_SERVER"
"""In a lane process started by a local run: the file descriptor its answers go to."""


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- the lane process -----------------------------------------------------------------------


def serve(
    stdin: IO[bytes],
    stdout: IO[bytes],
    stderr: IO[bytes],
    *,
    params_type: type,
    results_type: type,
    analyze: Callable[..., Any],
) -> None:
    """Answer lane requests until stdin ends."""
    from databacked.analysisrun import distributed
    from databacked.analysisrun import messages as msg
    from databacked.analysisrun.messages import ExitCodes, exit_with_error
    from databacked.analysisrun.tario import read_entries

    while True:
        header = _read_exact(stdin, 8)
        if header is None:
            return
        payload = _read_exact(stdin, struct.unpack(">Q", header)[0])
        if payload is None:
            return
        answer = io.BytesIO()
        code = 0
        try:
            try:
                entries = read_entries(io.BytesIO(payload))
                request = distributed.parse("analyze", entries, params_type, results_type)
            except Exception as exc:
                exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_INPUT, answer, stderr, exc,
                                mode="distributed")  # fmt: skip
            distributed.answer_analyze(request, analyze, results_type, answer, stderr)
        except SystemExit as done:
            code = int(done.code or 0)
        sys.stderr.flush()
        stderr.flush()
        data = answer.getvalue()
        stdout.write(MAGIC + struct.pack(">IQ", code, len(data)) + data)
        stdout.flush()


# -- the driver's side ----------------------------------------------------------------------


class LaneProcess:
    """One running lane process: ``ask(tar)`` -> (exit code, answer tar, its stderr)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close_all()
        # Answers come back on a pipe of their own: whatever the script prints, before or
        # after read_context, lands with its stderr and can never corrupt an answer.
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=self.errors, stderr=self.errors,
                env={**env, SERVE_ENV: str(write_end)}, pass_fds=(write_end,),
            )  # fmt: skip
        finally:
            os.close(write_end)
        self.answers = os.fdopen(read_end, "rb")
        self.offset = 0

    def ask(self, request: bytes) -> tuple[int, bytes, str] | None:
        """The answer to one lane, or None when the process died (its stderr is in
        ``last_words``)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(struct.pack(">Q", len(request)) + request)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        header = _read_exact(self.answers, 16)
        if header is None or header[:4] != MAGIC:
            # not a lane answer (the command is not an analysis script): fail the lane
            self.proc.kill()
            return None
        code, size = struct.unpack(">IQ", header[4:])
        data = _read_exact(self.answers, size)
        if data is None:
            return None
        return code, data, self._new_errors()

    def _new_errors(self) -> str:
        self.errors.seek(self.offset)
        text = self.errors.read()
        self.offset += len(text)
        return text.decode("utf-8", "replace")

    def last_words(self) -> tuple[int, str]:
        """Exit code and the stderr since the last answer, of a process that died."""
        self.close()
        return self.proc.returncode, self._new_errors()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_processes: dict[tuple[int, tuple[str, ...]], LaneProcess] = {}
_lock = threading.Lock()


def lane_process(command: list[str], env: dict[str, str]) -> LaneProcess:
    """This thread's lane process for ``command`` (started on first use)."""
    key = (threading.get_ident(), tuple(command))
    with _lock:
        found = _processes.get(key)
    if found is None or found.proc.poll() is not None:
        found = LaneProcess(command, env)
        with _lock:
            _processes[key] = found
    return found


def forget(process: LaneProcess) -> None:
    with _lock:
        for key, value in list(_processes.items()):
            if value is process:
                del _processes[key]


def close_all() -> None:
    """End every lane process this driver started (end of a local run)."""
    with _lock:
        found = list(_processes.values())
        _processes.clear()
    for process in found:
        process.close()
        process.answers.close()
        process.errors.close()


__all__ = ["SERVE_ENV", "LaneProcess", "close_all", "lane_process", "serve"]
