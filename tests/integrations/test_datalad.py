"""DataLad datasets as stores: run records that ``datalad rerun`` reproduces, lazy gets, hooks.

Everything is real: datalad, git and the git-annex wheel, run as a user runs them, in
their own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from databacked.catalog import Catalog
from databacked.testing import services

BIN = Path(sys.executable).parent
if shutil.which("git-annex", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}") is None:
    services.unavailable("git-annex is not installed: pip install 'databacked[datalad]'")
try:
    import datalad  # noqa: F401
except ImportError:  # pragma: no cover
    services.unavailable("datalad is not installed: pip install 'databacked[datalad]'")

PIPELINE = """\
import glob, os
import numpy as np
import databacked as db

@db.step(target="max/{name}.npy")
def maxproj(name: str, image: db.File) -> np.ndarray:
    return np.asarray(db.load(str(image))).max(axis=0)

def _name(path):
    return os.path.basename(path).split(".")[0]

@db.pipeline
def every():
    files = sorted(glob.glob("raw/plate1/*.ome.tiff"))
    return [maxproj(name=_name(f), image=db.File(f)) for f in files]

@db.pipeline
def one(name: str):
    return maxproj(name=name, image=db.File(f"raw/plate1/{name}.ome.tiff"))
"""

SPEC = """\
pipeline: up
input:
  pfs:
    repo: raw
    glob: "/(*).txt"
transform:
  cmd: [sh, -c, "{command}"]
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GIT_AUTHOR_NAME", "databacked tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@databacked.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "databacked tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@databacked.invalid")
    return env


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command as a user types it, with the test venv's tools first on PATH."""
    proc = subprocess.run(
        list(args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def databacked(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(cwd, str(BIN / "databacked"), *args, check=check)


def git(cwd: Path, *args: str) -> str:
    return sh(cwd, "git", *args).stdout.strip()


def commits(cwd: Path) -> list[str]:
    return git(cwd, "rev-list", "HEAD").splitlines()


def record(cwd: Path, rev: str = "HEAD") -> dict[str, Any]:
    message = git(cwd, "log", "-1", "--format=%B", rev)
    assert message.startswith("[DATALAD RUNCMD]"), message
    body = message.split("=== Do not change lines below ===\n", 1)[1]
    return json.loads(body.split("^^^ Do not change lines above ^^^", 1)[0])


def annex_keys(cwd: Path, folder: str) -> dict[str, str]:
    files = git(cwd, "ls-files", folder).splitlines()
    return {f: git(cwd, "annex", "lookupkey", f) for f in files}


def present(cwd: Path, folder: str) -> set[str]:
    return set(git(cwd, "annex", "find", "--in=here", folder).splitlines())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset with two raw images annexed and a pipeline file, saved: seed 004's layout."""
    from databacked.examples import make_plate

    ds = tmp_path_factory.mktemp("datalad") / "ds"
    sh(ds.parent, "datalad", "create", "-c", "text2git", str(ds))
    make_plate(ds / "raw", wells=("A01", "B02"), fields=1, size=(48, 48))
    (ds / "pipe.py").write_text(PIPELINE)
    (ds / ".gitignore").write_text(".databacked/\n")
    sh(ds, "datalad", "save", "-m", "raw images and the pipeline")
    return ds


def test_run_record_commit_reruns_to_identical_bytes_in_a_fresh_clone(dataset: Path) -> None:
    before = commits(dataset)
    first = databacked(
        dataset, "run", "pipe.py:every", "--store", "data", "--executor", "inline", "--datalad"
    )
    assert "run record" in first.stdout
    assert len(commits(dataset)) == len(before) + 1
    rec = record(dataset)
    assert rec["cmd"] == "databacked run pipe.py:every --store data --executor inline --no-datalad"
    assert rec["exit"] == 0 and rec["pwd"] == "." and rec["outputs"] == ["data"]
    assert rec["dsid"] == git(dataset, "config", "-f", ".datalad/config", "datalad.dataset.id")
    assert set(rec["inputs"]) == {
        "pipe.py",
        "raw/plate1/A01_s1.ome.tiff",
        "raw/plate1/B02_s1.ome.tiff",
    }
    assert git(dataset, "status", "--porcelain", "data") == ""
    keys = annex_keys(dataset, "data")
    assert set(keys) == {"data/max/A01_s1.npy", "data/max/B02_s1.npy"}

    # a second run changes nothing: no commit at all
    databacked(
        dataset, "run", "pipe.py:every", "--store", "data", "--executor", "inline", "--datalad"
    )
    assert len(commits(dataset)) == len(before) + 1

    clone = dataset.parent / "clone"
    sh(dataset.parent, "datalad", "clone", str(dataset), str(clone))
    assert present(clone, "data") == set()
    sh(clone, "datalad", "rerun", git(dataset, "rev-parse", "HEAD"))
    assert annex_keys(clone, "data") == keys  # same annex keys: byte-identical outputs
    assert present(clone, "data") == set(keys)  # recomputed here, not fetched
    assert git(clone, "status", "--porcelain") == ""
    with Catalog.open(f"sqlite:///{clone / '.databacked' / 'catalog.db'}") as catalog:
        (run,) = catalog.runs()
        assert {c.status for c in catalog.calls_of_run(run.id)} == {"ok"}


def test_dropped_annexed_input_is_fetched_for_exactly_the_call_that_needs_it(
    dataset: Path,
) -> None:
    clone = dataset.parent / "lazy"
    sh(dataset.parent, "datalad", "clone", str(dataset), str(clone))
    sh(clone, "datalad", "get", "raw")
    sh(clone, "datalad", "drop", "raw")
    assert present(clone, "raw/plate1") == set()
    databacked(
        clone, "run", "pipe.py:one", "-p", "name=B02_s1",
        "--store", "single", "--executor", "inline", "--datalad",
    )  # fmt: skip
    assert present(clone, "raw/plate1") == {"raw/plate1/B02_s1.ome.tiff"}
    rec = record(clone)
    assert rec["inputs"] == ["pipe.py", "raw/plate1/B02_s1.ome.tiff"]
    assert rec["outputs"] == ["single"]


def test_datalad_outside_a_dataset_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    proc = databacked(tmp_path, "run", "pipe.py:every", "--store", "data", "--datalad", check=False)
    assert proc.returncode == 2
    assert "not inside a DataLad dataset" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def hooked(tmp_path: Path) -> Path:
    """A dataset with a spec pipeline over raw/ and the databacked hook installed."""
    ds = tmp_path / "hooked"
    sh(tmp_path, "datalad", "create", "-c", "text2git", str(ds))
    (ds / "pipelines").mkdir()
    (ds / "raw").mkdir()
    (ds / "pipelines" / "up.yml").write_text(SPEC.format(command=UPPER))
    (ds / "databacked.toml").write_text(
        'store = "."\ncatalog = "sqlite:///.databacked/catalog.db"\nexecutor = "inline"\n'
    )
    (ds / ".gitignore").write_text(".databacked/\n")
    sh(ds, "datalad", "save", "-m", "project")
    out = databacked(ds, "hook", "install")
    assert "Installed" in out.stdout
    return ds


UPPER = "tr a-z A-Z < {input_dir}/raw/{1}.txt > {output_dir}/{1}.up"


def test_hook_runs_pipelines_after_datalad_save_never_blocks_and_uninstalls(
    hooked: Path,
) -> None:
    start = len(commits(hooked))
    (hooked / "raw" / "a.txt").write_text("hello\n")
    sh(hooked, "datalad", "save", "-m", "raw a")
    assert len(commits(hooked)) == start + 2  # the user's commit, then one results commit
    assert git(hooked, "log", "-1", "--format=%s", "HEAD~1") == "raw a"
    rec = record(hooked)
    assert rec["cmd"] == "databacked run pipelines --no-datalad"
    assert rec["outputs"] == ["up"]
    assert (hooked / "up" / "a.up").read_text() == "HELLO\n"
    assert git(hooked, "status", "--porcelain") == ""

    # a commit that touches no input repo runs nothing
    (hooked / "README.md").write_text("notes\n")
    sh(hooked, "datalad", "save", "-m", "notes")
    assert len(commits(hooked)) == start + 3
    assert git(hooked, "log", "-1", "--format=%s") == "notes"

    # a failing pipeline: the user's commit stands, the failure is in the hook's log
    broken = SPEC.format(command="echo 'cannot read {1}' >&2; exit 3")
    (hooked / "pipelines" / "up.yml").write_text(broken)
    (hooked / "raw" / "c.txt").write_text("see\n")
    assert sh(hooked, "datalad", "save", "-m", "raw c, broken pipeline").returncode == 0
    assert len(commits(hooked)) == start + 4
    assert git(hooked, "log", "-1", "--format=%s") == "raw c, broken pipeline"
    log = (hooked / ".git" / "databacked-hook.log").read_text()
    assert "nothing saved to the DataLad dataset" in log

    databacked(hooked, "hook", "uninstall")
    (hooked / "pipelines" / "up.yml").write_text(SPEC.format(command=UPPER))
    (hooked / "raw" / "b.txt").write_text("bye\n")
    sh(hooked, "datalad", "save", "-m", "raw b, pipeline fixed")
    assert len(commits(hooked)) == start + 5
    assert not (hooked / "up" / "b.up").exists()

    # the watcher saves what each of its runs made, with a run record
    databacked(hooked, "watch", "pipelines", "--once", "--datalad")
    assert len(commits(hooked)) == start + 6
    assert record(hooked)["cmd"] == "databacked spec run pipelines --no-datalad"
    assert (hooked / "up" / "b.up").read_text() == "BYE\n"
    assert (hooked / "up" / "c.up").read_text() == "SEE\n"


def test_hook_install_leaves_someone_elses_hook_alone(tmp_path: Path) -> None:
    ds = tmp_path / "other"
    sh(tmp_path, "datalad", "create", str(ds))
    theirs = ds / ".git" / "hooks" / "post-commit"
    theirs.write_text("#!/bin/sh\necho theirs\n")
    proc = databacked(ds, "hook", "install", check=False)
    assert proc.returncode == 2
    assert "already holds another post-commit hook" in proc.stderr
    assert theirs.read_text() == "#!/bin/sh\necho theirs\n"
    assert "No databacked hook" in databacked(ds, "hook", "uninstall").stdout
    assert theirs.exists()
