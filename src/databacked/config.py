"""Settings: where the store, the catalog and the executor come from.

One pydantic-settings model, filled in this order (later wins):
embedded defaults < ``[tool.databacked]`` in ``pyproject.toml`` < ``databacked.toml``
< ``DATABACKED_*`` environment variables < keyword arguments / CLI flags.

Only the edges (the CLI, the watcher, ``db.run``) read settings; everything below them
receives plain values or objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from databacked.errors import ConfigError
from databacked.secrets import redact, redact_text

redact_url = redact_text
"""Kept for callers of the old name; the rule lives in ``databacked.secrets``."""

DEFAULT_STORE = "./data"
DEFAULT_CATALOG = "sqlite:///.databacked/catalog.db"
Durability = Literal["batch", "fsync", "none"]


_MODELS: dict[str, Any] = {}


def _models() -> dict[str, Any]:
    """The pydantic models, built on first use: pydantic-settings costs ~0.2 s to import,
    which a no-op ``db.run`` with nothing configured should not pay."""
    if _MODELS:
        return _MODELS
    from pydantic import BaseModel, Field
    from pydantic_settings import (
        BaseSettings,
        PydanticBaseSettingsSource,
        PyprojectTomlConfigSettingsSource,
        SettingsConfigDict,
        TomlConfigSettingsSource,
    )

    class DaskSettings(BaseModel):
        """How the ``dask`` executor gets a cluster."""

        cluster_class: str | None = Field(
            default=None,
            description="Import path of a cluster class, e.g. 'dask_jobqueue.SLURMCluster'.",
        )
        cluster_kwargs: dict[str, Any] = Field(default_factory=dict)
        scale: int | None = Field(default=None, description="Number of workers to scale to.")
        scheduler_file: str | None = Field(
            default=None,
            description="Scheduler file of a running cluster (dask scheduler --scheduler-file).",
        )
        n_workers: int | None = None
        threads_per_worker: int = 1

    class CelerySettings(BaseModel):
        """How the ``celery`` executor reaches its broker and result backend."""

        broker: str | None = None
        backend: str | None = None
        queue: str = "databacked"
        task_timeout: float = Field(default=24 * 3600, description="Longest a call may take (s).")
        no_worker_warning: float = Field(
            default=30.0,
            description="Seconds without any worker on the queue before the driver says so.",
        )

    class ContainerSettings(BaseModel):
        """How spec ``cmd`` transforms with ``transform.image`` run in a container."""

        runtime: Literal["docker", "podman", "apptainer"] = "docker"
        executable: str | None = Field(
            default=None, description="Path of the runtime's program (default: its name)."
        )

    class WorkerSettings(BaseModel):
        """What a worker (``databacked worker``, ``python -m databacked.worker``) may run."""

        imports: list[str] = Field(
            default_factory=list,
            description="Modules whose steps and transforms workers may run (with submodules).",
        )
        key: str | None = Field(
            default=None,
            description="Shared HMAC key signing worker messages (or DATABACKED_WORKER_KEY).",
        )

    class Settings(BaseSettings):
        """Everything databacked can be configured with.

        >>> Settings(store="s3://bucket/prefix").store
        's3://bucket/prefix'
        """

        model_config = SettingsConfigDict(
            env_prefix="DATABACKED_",
            env_nested_delimiter="__",
            toml_file="databacked.toml",
            pyproject_toml_table_header=("tool", "databacked"),
            extra="forbid",
        )

        store: str = Field(default=DEFAULT_STORE, description="Where bytes live: a folder or URL.")
        catalog: str = Field(default=DEFAULT_CATALOG, description="SQLAlchemy URL of the catalog.")
        executor: str = Field(default="processes", description="inline, threads, processes, ...")
        workers: int | None = Field(default=None, description="Parallel workers (default: cores).")
        durability: Durability = "batch"
        storage_options: dict[str, Any] = Field(default_factory=dict)
        lease_ttl: float = Field(
            default=600.0, description="Seconds before a dead driver's lease expires."
        )
        resources: dict[str, Any] = Field(
            default_factory=dict,
            description="Capacities calls share: cpus, memory ('64GB'), gpus (default: detected).",
        )
        grace: float = Field(
            default=10.0,
            ge=0,
            description="Seconds running calls get to finish after SIGINT/SIGTERM.",
        )
        verify: bool = False
        datalad: bool = False
        containers: ContainerSettings = Field(default_factory=ContainerSettings)
        dask: DaskSettings = Field(default_factory=DaskSettings)
        celery: CelerySettings = Field(default_factory=CelerySettings)
        worker: WorkerSettings = Field(default_factory=WorkerSettings)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                TomlConfigSettingsSource(settings_cls),
                PyprojectTomlConfigSettingsSource(settings_cls),
            )

        def redacted(self) -> dict[str, Any]:
            """The settings as a dict with every secret removed, for logs and the catalog."""
            return redact(self.model_dump())

    _MODELS.update(
        Settings=Settings,
        DaskSettings=DaskSettings,
        CelerySettings=CelerySettings,
        ContainerSettings=ContainerSettings,
        WorkerSettings=WorkerSettings,
    )
    return _MODELS


def __getattr__(name: str) -> Any:
    if name in ("Settings", "DaskSettings", "CelerySettings", "WorkerSettings"):
        return _models()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Embedded defaults of the sections, for the fast path (a test checks they match the models).
_DASK_DEFAULTS: dict[str, Any] = {
    "cluster_class": None,
    "cluster_kwargs": {},
    "scale": None,
    "scheduler_file": None,
    "n_workers": None,
    "threads_per_worker": 1,
}
_CELERY_DEFAULTS: dict[str, Any] = {
    "broker": None,
    "backend": None,
    "queue": "databacked",
    "task_timeout": 24 * 3600,
    "no_worker_warning": 30.0,
}
_CONTAINERS_DEFAULTS: dict[str, Any] = {"runtime": "docker", "executable": None}
_SIMPLE_OVERRIDES: dict[str, type] = {
    "store": str,
    "catalog": str,
    "executor": str,
    "workers": int,
    "verify": bool,
}


class _Section:
    """A read-only settings section of embedded defaults (``.dask``, ``.celery``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def model_dump(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


class PlainSettings:
    """The embedded defaults plus simple keyword overrides, without pydantic.

    ``load_settings`` returns one when no file, no ``DATABACKED_*`` variable and no complex
    override is involved; it answers the same attributes as ``Settings``.
    """

    def __init__(self, **given: Any) -> None:
        self.store: str = DEFAULT_STORE
        self.catalog: str = DEFAULT_CATALOG
        self.executor: str = "processes"
        self.workers: int | None = None
        self.durability: str = "batch"
        self.storage_options: dict[str, Any] = {}
        self.lease_ttl: float = 600.0
        self.grace: float = 10.0
        self.resources: dict[str, Any] = {}
        self.verify: bool = False
        self.datalad: bool = False
        self.containers = _Section(dict(_CONTAINERS_DEFAULTS))
        self.dask = _Section(
            {k: (dict(v) if isinstance(v, dict) else v) for k, v in _DASK_DEFAULTS.items()}
        )
        self.celery = _Section(dict(_CELERY_DEFAULTS))
        self.worker = _Section({"imports": [], "key": None})
        self.__dict__.update(given)

    def model_dump(self) -> dict[str, Any]:
        return {
            k: (v.model_dump() if isinstance(v, _Section) else v) for k, v in self.__dict__.items()
        }

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret removed, for logs and the catalog."""
        return redact(self.model_dump())


def _only_defaults_apply(given: dict[str, Any]) -> bool:
    """No configuration file, no DATABACKED_* variable, only simple keyword overrides."""
    if any(
        k.upper().startswith("DATABACKED_") and not k.upper().startswith("DATABACKED_TEST_")
        for k in os.environ
    ):
        return False
    if Path("databacked.toml").exists():
        return False
    if _has_tool_table(Path("pyproject.toml")):
        return False  # a [tool.databacked] table: let pydantic-settings read it
    for key, value in given.items():
        kind = _SIMPLE_OVERRIDES.get(key)
        if kind is None or type(value) is not kind:
            return False
    return True


def _has_tool_table(pyproject: Path) -> bool:
    """Whether ``pyproject`` has a ``[tool.databacked]`` table (or is unreadable TOML, which
    pydantic-settings then reports)."""
    import tomllib

    try:
        text = pyproject.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "databacked" not in text:
        return False
    try:
        return "databacked" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        return True


def load_settings(**overrides: Any) -> Any:
    """Build settings from files, environment and ``overrides`` (``None`` values ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if _only_defaults_apply(given):
        return PlainSettings(**given)
    import tomllib

    from pydantic import ValidationError

    try:
        return _models()["Settings"](**given)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"databacked.toml or pyproject.toml is not valid TOML ({exc}); fix the file."
        ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(
            f"Invalid configuration for {where!r}: {first.get('msg')}. "
            "Check databacked.toml, [tool.databacked] in pyproject.toml and DATABACKED_* variables."
        ) from exc


def default_workers() -> int:
    """One worker per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def project_root(start: Path | None = None) -> Path:
    """The folder holding databacked.toml or pyproject.toml, else the working directory."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "databacked.toml").exists() or (folder / "pyproject.toml").exists():
            return folder
    return here
