"""DataLad datasets as stores (seed 004): run records, lazy ``datalad get``, no empty commits.

When the store lives in a DataLad dataset, a databacked run ends with one ``datalad save`` of
what changed under the store, whose commit message is a DataLad run record (``[DATALAD
RUNCMD]``: cmd, inputs, outputs, exit, pwd, dsid), so ``datalad rerun`` of that commit runs the
same databacked command again. DataLad writes the record itself (``run`` in inject mode:
the command already ran), so the format is DataLad's own. Annexed input files whose content
is not here are fetched with ``datalad get`` for exactly the calls about to be hashed.

Example::

    with lazy_get(dataset):
        result = db.run(pipeline, store="data")
    save_run(dataset, cmd=["databacked", "run", "pipe.py:p"], outputs=["data"], inputs=[])
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databacked.engine.files import MISSING_FILE_HANDLERS

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.store import Store
from databacked.errors import ConfigError, StoreError

log = logging.getLogger("databacked.integrations.datalad")

MAX_RECORDED_INPUTS = 1000
"""More input files than this are recorded by their folders, keeping the commit message small."""


def _api() -> Any:
    """``datalad.api``, or a sentence saying what to install."""
    try:
        import datalad.api
    except ImportError as exc:
        raise ConfigError(
            "DataLad support needs the datalad package: pip install 'databacked[datalad]'."
        ) from exc
    if shutil.which("git-annex") is None:
        raise ConfigError(
            "DataLad needs git-annex on PATH: pip install 'databacked[datalad]' (the git-annex "
            "wheel) or install git-annex from your package manager."
        )
    return datalad.api


def dataset_root(path: str | os.PathLike[str]) -> Path | None:
    """The DataLad dataset holding ``path`` (its nearest ``.datalad`` ancestor), or None."""
    here = Path(path).resolve()
    for folder in (here, *here.parents):
        if (folder / ".datalad").is_dir() and (folder / ".git").exists():
            return folder
    return None


def require_dataset(path: str | os.PathLike[str]) -> Path:
    """The dataset holding ``path``, or a ConfigError saying how to make one."""
    root = dataset_root(path)
    if root is None:
        raise ConfigError(
            f"{path} is not inside a DataLad dataset; create one with `datalad create -f .` "
            "or run without --datalad."
        )
    return root


def get_files(dataset: Path, paths: Sequence[str]) -> None:
    """``datalad get`` exactly these files (annexed content not present here)."""
    inside = [p for p in paths if _inside(dataset, p)]
    if not inside:
        return
    log.info("datalad get of %d input files", len(inside))
    results = _api().get(
        path=inside,
        dataset=str(dataset),
        result_renderer="disabled",
        on_failure="ignore",
        return_type="list",
    )
    failed = [r for r in results if r.get("status") in ("error", "impossible")]
    if failed:
        first = failed[0]
        raise StoreError(
            f"datalad get could not fetch {first.get('path')}: {first.get('message')}; check "
            "that a sibling holding the content is reachable (datalad siblings)."
        )


@contextmanager
def lazy_get(dataset: Path) -> Iterator[None]:
    """While active, input files the engine is about to hash are fetched when missing."""

    def handler(paths: list[str]) -> None:
        get_files(dataset, paths)

    MISSING_FILE_HANDLERS.append(handler)
    try:
        yield
    finally:
        MISSING_FILE_HANDLERS.remove(handler)


def _inside(dataset: Path, path: str | os.PathLike[str]) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(dataset)
    except ValueError:
        return False
    return True


def changed(dataset: Path, paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files under ``paths`` that differ from the dataset's last commit (new, modified...)."""
    results = _api().status(
        path=[str(p) for p in paths],
        dataset=str(dataset),
        untracked="all",
        annex=None,
        result_renderer="disabled",
        on_failure="ignore",
        return_type="list",
    )
    return sorted(
        r["path"] for r in results if r.get("type") != "dataset" and r.get("state") != "clean"
    )


def save_run(
    dataset: Path,
    *,
    cmd: Sequence[str],
    outputs: Sequence[str | os.PathLike[str]],
    inputs: Sequence[str | os.PathLike[str]] = (),
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str | None:
    """One ``datalad save`` of the changed outputs with a run record; None if nothing changed.

    Paths are relative to the current directory (the record's ``pwd``), as for ``datalad
    run``; ``cmd`` is what ``datalad rerun`` will execute there. ``extra`` is recorded under
    the record's ``databacked`` key (the container images the commands ran in).
    """
    from datalad.core.local.run import run_command

    api = _api()
    outs = [_relative(p) for p in outputs if _inside(dataset, p)]
    if not outs or not changed(dataset, outs):
        log.info("Nothing changed under %s: no DataLad commit", ", ".join(outs) or "the store")
        return None
    ins = _inputs([p for p in inputs if _inside(dataset, p)])
    repo = api.Dataset(str(dataset)).repo
    before = repo.get_hexsha()
    results = list(
        run_command(
            shlex.join(cmd),
            dataset=str(dataset),
            inputs=ins,
            outputs=outs,
            message=message,
            explicit=True,
            inject=True,
            extra_info={"exit": 0, **({"databacked": extra} if extra else {})},
        )
    )
    failed = [r for r in results if r.get("status") in ("error", "impossible")]
    if failed:
        raise StoreError(
            f"datalad save of the run failed: {failed[0].get('message')} ({failed[0].get('path')})."
        )
    after = repo.get_hexsha()
    return after if after != before else None


class Recorder:
    """What ``recording`` needs to know about the run it wraps."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        """Set by the caller once the run finished successfully; None means "do not save"."""
        self.commit: str | None = None
        """The run-record commit made, or None (nothing changed, or not saved)."""


@contextmanager
def recording(
    store: Store,
    catalog: Catalog,
    cmd: Sequence[str],
    *,
    outputs: Sequence[str] | None = None,
    code: Sequence[str] = (),
    message: str | None = None,
) -> Iterator[Recorder]:
    """Fetch missing annexed inputs during the run; then save its outputs with a run record.

    ``code``: files the command itself needs (the pipeline file), recorded as inputs too, so
    ``datalad rerun`` fetches them in a clone where they are annexed. ``outputs``: the folders
    the run writes (default: the whole store; spec pipelines give
    their output repos, so input repos are never unlocked by ``datalad rerun``). The caller
    sets ``recorder.run_id`` after a successful run; a failed run is not saved (its outputs
    stay as they are, for the next run to complete).
    """
    if not store.is_local:
        raise ConfigError(f"--datalad needs a local store inside a dataset, not {store.url}.")
    dataset = require_dataset(store.url)
    recorder = Recorder()
    with lazy_get(dataset):
        yield recorder
    if recorder.run_id is None:
        log.warning("The run did not finish cleanly: nothing saved to the DataLad dataset")
        return
    recorder.commit = save_run(
        dataset,
        cmd=cmd,
        outputs=list(outputs) if outputs is not None else [store.url],
        inputs=[*code, *run_inputs(catalog, store, recorder.run_id)],
        message=message,
    )


def run_inputs(catalog: Catalog, store: Store, run_id: str) -> list[str]:
    """Absolute paths of the local files the calls of a run read and did not make themselves."""
    calls = [c for c in catalog.calls_of_run(run_id) if c.status == "ok"]
    keys = [c.key for c in calls]
    made = {(o.store, o.path) for c in calls for o in c.outputs.values()}
    found: set[str] = set()
    for by_name in catalog.inputs_of(keys).values():
        for ref in (r for refs in by_name.values() for r in refs):
            if ref.path is None or (ref.store or store.url, ref.path) in made:
                continue
            if ref.path.startswith("/"):
                found.add(ref.path)
            elif ref.store in (None, store.url) and store.is_local:
                found.add(str(Path(store.url) / ref.path))
    return sorted(found)


def dangling(folder: str | os.PathLike[str]) -> list[str]:
    """Annexed files under ``folder`` whose content is not here (dangling symlinks)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) and not os.path.exists(path):
                found.append(path)
    return sorted(found)


def spec_saver(
    specs_folder: str | os.PathLike[str],
    store: Store,
    *,
    cmd: Sequence[str],
    message: str | None = None,
) -> Callable[[Any], str | None]:
    """Fetch what the input repos lack, and return what saves a spec run's output repos.

    Datum keys are content hashes, so every file the input repos hold must be here first:
    the files of those repos whose content is missing are fetched (and only those repos).
    The returned function takes a spec run's result and makes one commit with a run record
    (None when a datum failed or nothing changed); the watcher calls it after each run.
    """
    from databacked.specs.containers import for_spec
    from databacked.specs.plan import ordered_specs

    if not store.is_local:
        raise ConfigError(f"--datalad needs a local store inside a dataset, not {store.url}.")
    dataset = require_dataset(store.url)
    specs, _ = ordered_specs(specs_folder, store)
    outputs = {s.pipeline for s in specs}
    read = dict.fromkeys(r for s in specs for r in s.input_repos())
    repos = [r for r in read if r not in outputs]
    root = Path(store.url)
    get_files(dataset, [p for repo in repos for p in dangling(root / repo)])

    def save(result: Any) -> str | None:
        if not result.ok:
            log.warning("Some datums failed: nothing saved to the DataLad dataset")
            return None
        images = {s.pipeline: c.describe() for s in specs if (c := for_spec(s)) is not None}
        return save_run(
            dataset,
            cmd=cmd,
            outputs=[str(root / name) for name in sorted(outputs)],
            inputs=[str(root / repo) for repo in repos] + [str(specs_folder)],
            message=message,
            extra={"containers": images} if images else None,
        )

    return save


def run_specs_saved(
    specs_folder: str | os.PathLike[str],
    *,
    store: Store,
    catalog: Catalog,
    cmd: Sequence[str],
    message: str | None = None,
    **run_options: Any,
) -> tuple[Any, str | None]:
    """Run spec pipelines and save their output repos with one run record.

    Returns (the spec run result, the commit or None).
    """
    from databacked.specs.runner import run_specs

    save = spec_saver(specs_folder, store, cmd=cmd, message=message)
    result = run_specs(specs_folder, store=store, catalog=catalog, **run_options)
    return result, save(result)


def _relative(path: str | os.PathLike[str]) -> str:
    return os.path.relpath(os.path.abspath(path))


def _inputs(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    rel = sorted({_relative(p) for p in paths})
    if len(rel) > MAX_RECORDED_INPUTS:
        rel = sorted({os.path.dirname(p) or "." for p in rel})
    return rel


__all__ = [
    "Recorder",
    "changed",
    "dangling",
    "dataset_root",
    "get_files",
    "lazy_get",
    "recording",
    "require_dataset",
    "run_inputs",
    "run_specs_saved",
    "save_run",
    "spec_saver",
]
