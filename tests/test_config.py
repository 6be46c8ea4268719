"""Settings: embedded defaults, environment, files, and secrets kept out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from databacked.config import load_settings, redact, redact_url
from databacked.errors import ConfigError, DatabackedError


def test_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.store == "./data"
    assert settings.catalog == "sqlite:///.databacked/catalog.db"
    assert settings.executor == "processes"
    assert settings.durability == "batch"


def test_environment_beats_file_and_keywords_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "databacked.toml").write_text('store = "from-file"\nexecutor = "threads"\n')
    assert load_settings().store == "from-file"
    monkeypatch.setenv("DATABACKED_STORE", "from-env")
    assert load_settings().store == "from-env"
    assert load_settings().executor == "threads"
    assert load_settings(store="from-kwarg").store == "from-kwarg"
    monkeypatch.setenv("DATABACKED_DASK__SCALE", "4")
    assert load_settings().dask.scale == 4


def test_bad_value_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="durability") as info:
        load_settings(durability="sometimes")
    assert isinstance(info.value, DatabackedError)
    assert "\n" not in str(info.value)


def test_secrets_are_redacted() -> None:
    url = "postgresql+psycopg://alice:hunter2@db.example:5432/lab"
    assert "hunter2" not in redact_url(url)
    assert redact_url(url).startswith("postgresql+psycopg://alice:***@db.example")
    cleaned = redact({"catalog": url, "storage_options": {"secret": "s3cr3t", "region": "eu"}})
    assert "hunter2" not in str(cleaned) and "s3cr3t" not in str(cleaned)
    assert cleaned["storage_options"]["region"] == "eu"


def test_defaults_without_pydantic_match_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databacked.config import PlainSettings, Settings

    monkeypatch.chdir(tmp_path)
    assert PlainSettings().model_dump() == Settings().model_dump()
    fast = load_settings(store="s3://b/p", workers=3, verify=True)
    assert isinstance(fast, PlainSettings)
    assert (fast.store, fast.workers, fast.verify) == ("s3://b/p", 3, True)
    assert fast.dask.model_dump()["threads_per_worker"] == 1


def test_nothing_configured_does_not_import_pydantic(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from databacked.config import load_settings; load_settings(store='x'); "
        "print('pydantic_settings' in sys.modules)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DATABACKED_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_pyproject_table_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.databacked]\nexecutor = "threads"\n')
    assert load_settings().executor == "threads"
    assert load_settings(executor="inline").executor == "inline"


def test_a_project_pyproject_without_our_table_keeps_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's own pyproject.toml (databacked as a dependency, other tools' tables) is
    not configuration: the defaults apply and pydantic-settings is not needed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "screen"\ndependencies = ["databacked[all]"]\n\n'
        '[tool.ruff]\nsrc = ["src/databacked_screen"]\n'
    )
    assert type(load_settings()).__name__ == "PlainSettings"
    assert load_settings().executor == "processes"
    (tmp_path / "pyproject.toml").write_text('[tool.databacked\nexecutor = "threads"\n')
    with pytest.raises(ConfigError):  # broken TOML goes to pydantic-settings, which says so
        load_settings()
