"""Export what the catalog knows as a Workflow Run RO-Crate (Provenance Run Crate profile).

Seed 000 wants every product "tied to the code and publish ready": the crate holds the
files (unless ``data=False``) and, in ``ro-crate-metadata.json``, how each was made -- one
``CreateAction`` per call (the step with its fingerprint, module and git commit as
instrument, inputs and parameters as object, outputs as result), the pipeline as a
``ComputationalWorkflow`` with one ``HowToStep`` per step, and the software with versions.

Example::

    from databacked.integrations.rocrate import export_rocrate
    export_rocrate("crate", catalog, store=store)          # the latest run
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databacked.errors import ConfigError, DatabackedError
from databacked.integrations.crate_files import CrateFile, crate_path, materialise
from databacked.store import Store

if TYPE_CHECKING:
    from databacked.catalog import CallRow, Catalog, InputRef, RunRow

log = logging.getLogger("databacked.integrations.rocrate")


@dataclass(frozen=True, slots=True)
class CrateReport:
    """What an export wrote."""

    path: Path
    """The crate folder, or the zip file."""
    actions: int
    """Calls described (one CreateAction each)."""
    files: int
    """Data entities described."""
    changed: tuple[str, ...] = ()
    """Files whose bytes changed since they were recorded (described, not copied)."""
    missing: tuple[str, ...] = ()
    """Files that are gone (described by their record only)."""


def export_rocrate(
    out: str | Path,
    catalog: Catalog,
    *,
    store: Store | str,
    run_id: str | None = None,
    targets: Sequence[str] = (),
    data: bool = True,
    zip: bool = False,
    license: str | None = None,
) -> CrateReport:
    """Write a Provenance Run Crate of a run (default: the latest) or of targets' lineage."""
    try:
        from databacked.integrations import crate_graph
    except ImportError as exc:
        raise ConfigError(
            f"The RO-Crate export needs the rocrate package ({exc.name} is missing): "
            "pip install 'databacked[rocrate]'."
        ) from exc
    store = Store.from_url(store)
    out = Path(out)
    if zip and out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists; export into a new folder (or remove it first).")
    calls, runs = _select(catalog, store, run_id, targets)
    inputs = {  # key -> (argument name, input) edges, in argument order
        key: [(name, ref) for name, refs in by_name.items() for ref in refs]
        for key, by_name in catalog.inputs_of(c.key for c in calls if c.status == "ok").items()
    }
    files = _files(store, calls, inputs)
    folder = Path(tempfile.mkdtemp(prefix=".crate-", dir=out.parent)) if zip else out
    folder.mkdir(parents=True, exist_ok=True)
    try:
        digests = materialise(files.values(), catalog, folder, copy=data)
        crate = crate_graph.build(
            store=store,
            calls=calls,
            runs=runs,
            inputs=inputs,
            files=files,
            digests=digests,
            data=data,
            license=license,
        )
        (folder / crate_graph.WORKFLOW_FILE).write_text(
            json.dumps(crate_graph.workflow_document(calls, runs), indent=2) + "\n"
        )
        crate.metadata.write(folder)
        if zip:
            archive = shutil.make_archive(str(out.with_suffix("")), "zip", root_dir=folder)
            out = Path(archive)
    finally:
        if zip:
            shutil.rmtree(folder, ignore_errors=True)
    described = sum(1 for f in files.values() if data or f.crate_path in digests.sha256)
    log.info("RO-Crate of %d calls and %d files written to %s", len(calls), described, out)
    return CrateReport(out, len(calls), len(files), tuple(digests.changed), tuple(digests.missing))


def _select(
    catalog: Catalog, store: Store, run_id: str | None, targets: Sequence[str]
) -> tuple[list[CallRow], list[RunRow]]:
    runs = {r.id: r for r in catalog.runs(limit=100_000)}
    if targets:
        calls: dict[str, CallRow] = {}
        for target in targets:
            rows = catalog.lineage(store.url, _relative(store, target))
            if not rows or rows[0].call is None:
                raise ConfigError(
                    f"The catalog knows no call that made {target!r} in {store.url}; "
                    "list the known files with `databacked ls`."
                )
            for row in rows:
                if row.call is not None:
                    calls.setdefault(row.call.key, row.call)
        chosen = sorted(calls.values(), key=lambda c: (c.started or 0.0, c.key))
        used = {c.run_id for c in chosen}
        return chosen, [r for r in runs.values() if r.id in used]
    if not runs:
        raise ConfigError("The catalog has no runs yet: run a pipeline before exporting it.")
    if run_id is None:
        run = max(runs.values(), key=lambda r: r.started)
    else:
        found = [r for r in runs.values() if r.id.startswith(run_id)]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise ConfigError(
                f"The catalog has {what} run matching {run_id!r}; list runs with "
                "`databacked status`."
            )
        run = found[0]
    chosen = [c for c in catalog.calls_of_run(run.id) if c.status in ("ok", "failed")]
    if not chosen:
        raise ConfigError(
            f"Run {run.id[:12]} computed no call (everything was cached); export the run that "
            "made the files with --run, or name the files as targets."
        )
    return chosen, [run]


def _relative(store: Store, target: str) -> str:
    if store.is_local and Path(target).is_absolute():
        try:
            return Path(target).resolve().relative_to(Path(store.url).resolve()).as_posix()
        except ValueError:
            raise ConfigError(f"{target} is not inside the store {store.url}.") from None
    return target.strip("/")


def _files(
    store: Store, calls: Iterable[CallRow], inputs: dict[str, list[tuple[str, InputRef]]]
) -> dict[str, CrateFile]:
    """blake3 hash + location -> CrateFile for every output and file input of the calls."""
    files: dict[str, CrateFile] = {}

    def add(the_store: Store, path: str, digest: str, **extra: Any) -> None:
        ident = f"{the_store.url}\0{path}"
        if ident in files:
            return
        folder = extra.get("format") == "ome-zarr"
        local = Path(path) if path.startswith("/") else None
        files[ident] = CrateFile(
            crate_path=crate_path(the_store, path, digest, folder=folder),
            uri=str(local) if local else the_store.uri(path),
            hash=digest,
            store_url="" if local else the_store.url,
            store_path=path,
            **extra,
        )

    for call in calls:
        for art in call.outputs.values():
            the_store = store if art.store == store.url else Store.from_url(art.store)
            add(
                the_store,
                art.path,
                art.hash,
                size=art.size,
                format=art.format or "",
                metadata=tuple(sorted((art.metadata or {}).items())),
            )
        for _, ref in inputs.get(call.key, ()):
            if ref.path is None:
                continue
            the_store = store if ref.store in (None, store.url) else Store.from_url(ref.store)
            if file_id(the_store.url, ref.path) not in files:
                meta = _image_metadata(the_store, ref.path)
                add(the_store, ref.path, ref.hash, metadata=tuple(sorted(meta.items())))
    return files


def _image_metadata(store: Store, path: str) -> dict[str, Any]:
    """OME metadata (dims, channels, pixel sizes) of a source image the catalog has none of."""
    from databacked.formats.images import AnyImage
    from databacked.formats.registry import format_for_path

    fmt = format_for_path(path)
    images = ("ome-tiff", "tiff", "ome-zarr", "image")
    if fmt is None or (fmt.name not in images and not isinstance(fmt, AnyImage)):
        return {}
    if path.startswith("/"):
        store, path = Store(str(Path(path).parent)), Path(path).name
    try:
        return dict(fmt.read_metadata(store, path))
    except (DatabackedError, OSError, ValueError) as exc:
        log.warning("Could not read the image metadata of %s: %s", path, exc)
        return {}


def file_id(store_url: str, path: str) -> str:
    """The key ``_files`` uses for a location (crate_graph looks files up by it)."""
    return f"{store_url}\0{path}"


__all__ = ["CrateReport", "export_rocrate", "file_id"]
