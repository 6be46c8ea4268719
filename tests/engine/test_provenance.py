"""Run provenance: git state, versions, configuration without secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import databacked as db
from databacked.engine.provenance import git_state, package_versions, run_info


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    commit, dirty = git_state(tmp_path)
    assert commit is not None and len(commit) == 40
    assert dirty is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (commit, True)


def test_versions_and_redacted_config() -> None:
    assert {"databacked", "numpy", "pandas"} <= set(package_versions(["pytest"]))
    assert "pytest" in package_versions(["pytest.main"])
    info = run_info("p", [], {"catalog": "postgresql://u:hunter2@h/db", "s3_secret_key": "x"})
    assert "hunter2" not in str(info)
    assert info["config"]["s3_secret_key"] == "***"
    assert info["pipeline"] == "p" and info["pid"] > 0


@db.step(persist=False)
def double(x: int) -> int:
    return 2 * x


@db.pipeline
def doubled(x: int):
    return double(x)


def test_run_is_recorded(tmp_path: Path) -> None:
    catalog = db.Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        result = db.run(doubled, 4, store=str(tmp_path / "d"), catalog=catalog, executor="inline")
        assert result.value == 8
        runs = catalog.runs()
        assert [r.id for r in runs] == [result.run_id]
        assert runs[0].pipeline == "doubled"
        assert runs[0].status == "ok"
        assert runs[0].python
    finally:
        catalog.close()


def test_plan_of_values_pipeline(tmp_path: Path) -> None:
    planned = db.plan(doubled, 4, store=str(tmp_path / "d"), catalog=f"sqlite:///{tmp_path}/c.db")
    assert planned.calls.to_dict("records") == [
        {
            "step": "double",
            "key": planned.calls.key[0],
            "status": "run",
            "reason": "new",
            "target": None,
        }
    ]


def test_versions_of_packages_not_imported_match_their_metadata(tmp_path: Path) -> None:
    """Read from the installed dist-info without importing the package (or
    importlib.metadata), for the same answer; a project's own module has none."""
    import importlib.metadata
    import sys

    (tmp_path / "own_steps.py").write_text("x = 1\n")
    code = (
        "import sys\n"
        "from databacked.engine.provenance import package_versions\n"
        "v = package_versions(['blake3', 'loky', 'own_steps'])\n"
        "print(v.get('blake3'), v.get('loky'), v.get('own_steps'))\n"
        "print(*(m in sys.modules for m in ('blake3', 'loky', 'importlib.metadata')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    version = importlib.metadata.version
    assert out[:3] == [version("blake3"), version("loky"), "None"]
    assert out[3:] == ["False", "False", "False"]
