"""A git post-commit hook that runs the spec pipelines after new data is saved (seed 004).

"Files only please": no CI server, no web hook. After a commit (``datalad save``) that
touches an input repo of the spec pipelines, the pipelines run and their output repos are
saved as a second commit carrying a DataLad run record. That results commit does not
trigger the hook again (it is recognised, and the hook's own run is marked in the
environment). A failing run is logged to ``.git/databacked-hook.log`` and never undoes or
blocks the user's commit: git ignores a post-commit hook's exit status, and ours is 0.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from databacked.errors import ConfigError

log = logging.getLogger("databacked.integrations.hook")

MARK = "# databacked post-commit hook"
"""First comment line of the hook script: how install and uninstall recognise it."""
ACTIVE = "DATABACKED_HOOK_ACTIVE"
"""Set while the hook's own pipelines run, so the results commit does not re-trigger it."""
LOG_NAME = "databacked-hook.log"
RUNCMD = "[DATALAD RUNCMD]"


def _git(dataset: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=dataset, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise ConfigError(
            f"{dataset} is not a git repository (git {args[0]}: {exc.stderr.strip()}); "
            "create the dataset first with `datalad create`."
        ) from exc


def hook_path(dataset: Path) -> Path:
    """Where git looks for the post-commit hook of ``dataset`` (handles linked .git files)."""
    return (dataset / _git(dataset, "rev-parse", "--git-path", "hooks/post-commit")).resolve()


def _command() -> list[str]:
    """How the hook starts databacked: this interpreter, so the same installation runs."""
    return [sys.executable, "-c", "from databacked.cli import main; main()"]


def script(specs: str) -> str:
    """The hook script: run ``databacked hook run`` from the dataset root, never fail."""
    run = shlex.join([*_command(), "hook", "run", "--specs", specs])
    return (
        "#!/bin/sh\n"
        f"{MARK}: runs the spec pipelines after a commit that touches their inputs.\n"
        "# Installed by `databacked hook install`; remove it with `databacked hook uninstall`.\n"
        f'[ -n "${ACTIVE}" ] && exit 0\n'
        'cd "$(git rev-parse --show-toplevel)" || exit 0\n'
        f'{ACTIVE}=1 {run} >> "$(git rev-parse --git-dir)/{LOG_NAME}" 2>&1 || true\n'
        "exit 0\n"
    )


def install(dataset: str | os.PathLike[str], *, specs: str = "pipelines") -> Path:
    """Install (or refresh) the post-commit hook; refuses to overwrite someone else's."""
    root = Path(dataset).resolve()
    path = hook_path(root)
    if path.exists() and MARK not in path.read_text(errors="replace"):
        raise ConfigError(
            f"{path} already holds another post-commit hook; merge it by hand or move it away, "
            "then run `databacked hook install` again."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(specs))
    path.chmod(0o755)
    log.info("post-commit hook installed in %s", path)
    return path


def uninstall(dataset: str | os.PathLike[str]) -> bool:
    """Remove our hook; False when there was none (another tool's hook is left alone)."""
    path = hook_path(Path(dataset).resolve())
    if not path.exists() or MARK not in path.read_text(errors="replace"):
        return False
    path.unlink()
    return True


def touched_inputs(dataset: Path, input_folders: list[str]) -> list[str]:
    """Paths of the last commit that lie in the input folders (dataset-relative POSIX)."""
    changed = _git(dataset, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", "HEAD")
    prefixes = [f.rstrip("/") + "/" for f in input_folders]
    return [p for p in changed.splitlines() if any(p.startswith(pre) for pre in prefixes)]


def is_own_commit(dataset: Path) -> bool:
    """Is HEAD a results commit that databacked made (a run record of a databacked command)?"""
    message = _git(dataset, "log", "-1", "--format=%B")
    return message.startswith(RUNCMD) and '"cmd": "databacked ' in message


def run_after_commit(
    dataset: str | os.PathLike[str], settings: Any, *, specs: str = "pipelines"
) -> str | None:
    """The hook's body: run and save the pipelines if HEAD touched their inputs.

    ``settings``: the project's configuration (the CLI reads it). Returns the results
    commit, or None when nothing ran or nothing changed.
    """
    from databacked.catalog import Catalog
    from databacked.integrations.datalad import run_specs_saved
    from databacked.specs.plan import ordered_specs
    from databacked.store import Store

    root = Path(dataset).resolve()
    if is_own_commit(root):
        log.info("HEAD is a databacked results commit: nothing to do")
        return None
    store = Store(settings.store, durability=settings.durability)
    pipelines, _ = ordered_specs(root / specs, store)
    outputs = {s.pipeline for s in pipelines}
    repos = {r for s in pipelines for r in s.input_repos()} - outputs
    base = Path(store.url).resolve().relative_to(root).as_posix()
    folders = sorted(f"{base}/{r}" if base != "." else r for r in repos)
    touched = touched_inputs(root, folders)
    if not touched:
        log.info("The commit touched no input repo (%s): nothing to run", ", ".join(folders))
        return None
    log.info("The commit touched %d input files: running the pipelines", len(touched))
    catalog = Catalog.open(settings.catalog)
    try:
        result, commit = run_specs_saved(
            root / specs,
            store=store,
            catalog=catalog,
            cmd=["databacked", "run", specs, "--no-datalad"],
            message=f"databacked: pipelines after {len(touched)} new or changed input files",
            executor=settings.executor,
            workers=settings.workers,
        )
    finally:
        catalog.close()
    if not result.ok:
        log.error("Some datums failed; see `databacked spec status %s`", specs)
    return commit


def main_run(specs: str, settings: Any) -> int:
    """``databacked hook run``: never raises, so a failure is a log line, not a broken commit."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        commit = run_after_commit(Path.cwd(), settings, specs=specs)
    except Exception:
        log.exception("databacked hook failed; the commit itself is unaffected")
        return 1
    if commit:
        log.info("Results saved as %s", commit)
    return 0


__all__ = [
    "ACTIVE",
    "MARK",
    "hook_path",
    "install",
    "is_own_commit",
    "main_run",
    "run_after_commit",
    "script",
    "touched_inputs",
    "uninstall",
]
