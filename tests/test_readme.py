"""Every code block of README.md runs, in order, in one temporary folder: the README cannot drift.

How each block is taken, by its fence language:

- ``python``: run in one shared namespace, like notebook cells, with the folder as working
  directory and on ``sys.path``. A block whose first line is ``# NAME.py`` is a file the
  reader saves: it is written there instead (later blocks import it).
- ``sh``/``bash``/``shell``: a bash script (``set -euo pipefail``) in the folder, with this
  checkout's ``databacked`` first on PATH; it must exit 0.
- ``yaml``: a spec, loaded by ``databacked.specs.load_text``; written to its ``# path``.
- ``toml``: configuration, accepted by ``databacked.config.load_settings`` (validated in a
  scratch folder, so an example ``store = "s3://..."`` does not redirect later blocks).

New sections are picked up by themselves. A block that truly cannot run here opts out with a
visible marker right before its fence, reason required::

    <!-- readme-test: skip (needs a Celery worker) -->
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<what>.*?)\s*-->\s*$")
SKIP = re.compile(r"^skip\s*\((?P<reason>[^)]+)\)$")
SHELLS = ("sh", "bash", "shell")
FILE_COMMENT = re.compile(r"^#\s*(?P<path>[\w./-]+\.(?:py|ya?ml))\s*$")
SHELL_TIMEOUT = 300

pytestmark = pytest.mark.xdist_group("readme")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int
    lang: str
    text: str
    skip: str | None = None
    """The reason given by a ``readme-test: skip (...)`` marker."""
    marker_error: str | None = None

    @property
    def name(self) -> str:
        return f"README.md:{self.line}:{self.lang or 'plain'}"


def blocks(text: str) -> list[Block]:
    """Fenced blocks in order, each with the marker right before it (blank lines allowed)."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    pending: tuple[str | None, str | None] = (None, None)  # (skip reason, marker error)
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if marker:
            skip = SKIP.match(marker.group("what"))
            pending = (
                (skip.group("reason").strip(), None)
                if skip
                else (None, f"unknown readme-test marker {marker.group('what')!r}")
            )
        elif fence:
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            body = "\n".join(lines[start:i]) + "\n"
            found.append(Block(start, fence.group("lang"), body, *pending))
            pending = (None, None)
        elif line.strip():
            if pending != (None, None):
                found.append(
                    Block(i, "", "", None, "a readme-test marker must come right before a block")
                )
            pending = (None, None)
        i += 1
    return found


ALL = blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in ALL if b.skip is None]


@dataclass
class Session:
    """The reader's folder and notebook namespace, shared by the blocks in README order."""

    folder: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})
    done: dict[int, str | None] = field(default_factory=dict)
    """Block line -> None when it ran, else why it failed."""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _configures_databacked(k)}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        src = str(ROOT / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env["COLUMNS"] = "200"
        return env

    def run_through(self, block: Block) -> None:
        """Run every earlier block not yet run (a single test run with -k still works)."""
        for earlier in RUNNABLE:
            if earlier.line >= block.line:
                break
            if earlier.line not in self.done:
                self.run(earlier)
        failed = [line for line, why in self.done.items() if why and line < block.line]
        if failed:
            pytest.fail(f"an earlier README block failed (line {failed[0]}); fix that first")
        self.run(block)

    def run(self, block: Block) -> None:
        self.done[block.line] = "running"
        try:
            with _inside(self.folder, self.env()):
                RUNNERS[_kind(block)](self, block)
        except BaseException as exc:
            self.done[block.line] = f"{type(exc).__name__}: {exc}"
            raise
        self.done[block.line] = None


def _configures_databacked(name: str) -> bool:
    upper = name.upper()
    return upper.startswith("DATABACKED_") and not upper.startswith("DATABACKED_TEST_")


@contextlib.contextmanager
def _inside(folder: Path, env: dict[str, str]) -> Iterator[None]:
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(folder)
    for name in [k for k in os.environ if _configures_databacked(k)]:
        del os.environ[name]
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def _kind(block: Block) -> str:
    lang = block.lang.lower()
    if lang in SHELLS:
        return "shell"
    if lang in ("python", "py", "yaml", "yml", "toml"):
        return {"py": "python", "yml": "yaml"}.get(lang, lang)
    raise AssertionError(
        f"{block.name}: a block of language {block.lang or '(none)'!r} cannot be run; give it "
        "python, sh, yaml or toml, or put <!-- readme-test: skip (why) --> right before it."
    )


def _file_of(block: Block) -> str | None:
    first = block.text.splitlines()[0] if block.text.strip() else ""
    match = FILE_COMMENT.match(first.strip())
    return match.group("path") if match else None


def _write(session: Session, relpath: str, text: str) -> None:
    path = session.folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _python(session: Session, block: Block) -> None:
    relpath = _file_of(block)
    if relpath:
        _write(session, relpath, block.text)
        return
    code = compile(block.text, f"<{block.name}>", "exec")
    exec(code, session.namespace)


def _shell(session: Session, block: Block) -> None:
    script = "set -euo pipefail\n" + block.text
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=session.folder,
        env=session.env(),
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{block.name} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )


def _yaml(session: Session, block: Block) -> None:
    from databacked.specs import load_text

    assert load_text(block.text, source=block.name)
    relpath = _file_of(block)
    if relpath:
        _write(session, relpath, block.text)


def _toml(session: Session, block: Block) -> None:
    from databacked.config import load_settings

    scratch = session.folder / ".readme-toml"
    scratch.mkdir(exist_ok=True)
    (scratch / "databacked.toml").write_text(block.text, encoding="utf-8")
    with _inside(scratch, dict(os.environ)):
        settings = load_settings()
    assert settings.store, block.name


RUNNERS = {"python": _python, "shell": _shell, "yaml": _yaml, "toml": _toml}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("readme")
    sys.path.insert(0, str(folder))
    before = set(sys.modules)
    try:
        yield Session(folder)
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules.get(name), "__file__", None) or ""
            if module_file.startswith(str(folder)):
                del sys.modules[name]


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(block: Block, session: Session) -> None:
    session.run_through(block)


def test_markers_are_explicit_and_rare() -> None:
    """Opting out needs a reason, right before a block; most blocks still run."""
    problems = [f"line {b.line}: {b.marker_error}" for b in ALL if b.marker_error]
    assert not problems, problems
    skipped = [b for b in ALL if b.skip is not None]
    assert all(len(b.skip or "") > 5 for b in skipped)
    assert len(RUNNABLE) > len(skipped), [b.name for b in skipped]


def test_the_parser_sees_markers_and_files() -> None:
    sample = textwrap.dedent(
        """\
        Text.

        <!-- readme-test: skip (needs a Celery worker) -->
        ```sh
        databacked worker
        ```

        ```python
        # pipeline.py
        x = 1
        ```
        """
    )
    first, second = blocks(sample)
    assert first.skip == "needs a Celery worker" and first.lang == "sh"
    assert second.skip is None and _file_of(second) == "pipeline.py"
    assert blocks("<!-- readme-test: skip (x) -->\nsome text\n```sh\nls\n```\n")[0].marker_error
