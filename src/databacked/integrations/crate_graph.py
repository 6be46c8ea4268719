"""The metadata graph of a Provenance Run Crate, built with the ``rocrate`` package.

Shapes follow https://w3id.org/ro/wfrun/provenance/0.5: the pipeline is the crate's
``mainEntity`` (File + SoftwareSourceCode + ComputationalWorkflow + HowTo) with one tool and
one ``HowToStep`` per step; each call is a ``CreateAction`` whose instrument is its tool; a
``ControlAction`` links each step to its calls, and an ``OrganizeAction`` (instrument:
databacked) links the run's ``CreateAction`` to them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rocrate.model.contextentity import ContextEntity
from rocrate.model.file import File
from rocrate.rocrate import ROCrate

from databacked.integrations.crate_files import CrateFile, Digests

if TYPE_CHECKING:
    from databacked.catalog import CallRow, InputRef, RunRow
    from databacked.store import Store

WORKFLOW_FILE = "pipeline.json"
"""The crate's mainEntity: the pipeline's steps, fingerprints and modules, as JSON."""

WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
WFRUN = "https://w3id.org/ro/terms/workflow-run#"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/ro/wfrun/provenance/0.5": "Provenance Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
_MIME = {
    "ome-tiff": "image/tiff",
    "tiff": "image/tiff",
    "png": "image/png",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "npy": "application/x-npy",
    "pickle": "application/octet-stream",
}
_IMAGES = {"ome-tiff", "tiff", "ome-zarr", "png"}
_STATUS = {"ok": "CompletedActionStatus", "failed": "FailedActionStatus"}


def iso(epoch: float | None) -> str | None:
    """ISO 8601 with the UTC offset, as schema.org DateTime wants."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _ref(entity: Any) -> dict[str, str]:
    return {"@id": entity if isinstance(entity, str) else entity.id}


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    return "DataStructure"


def _text(value: Any) -> Any:
    import json

    return value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)


def workflow_document(calls: Sequence[CallRow], runs: Sequence[RunRow]) -> dict[str, Any]:
    """The content of ``pipeline.json``: what the crate's mainEntity file says."""
    modules = _modules(runs)
    steps: dict[str, dict[str, Any]] = {}
    for call in calls:
        steps.setdefault(
            call.step,
            {
                "name": call.step,
                "fingerprint": call.fingerprint,
                "function": modules.get(call.step),
            },
        )
    return {
        "pipelines": sorted({r.pipeline for r in runs}),
        "runs": [r.id for r in runs],
        "git": [{"commit": r.git_commit, "dirty": r.git_dirty} for r in runs],
        "steps": list(steps.values()),
    }


def _modules(runs: Iterable[RunRow]) -> dict[str, str]:
    found: dict[str, str] = {}
    for run in runs:
        found.update((run.config or {}).get("steps") or {})
    return found


class _Builder:
    """Adds entities to one crate; one method per kind of entity."""

    def __init__(self, files: dict[str, CrateFile], digests: Digests, data: bool) -> None:
        self.crate = ROCrate(version="1.1")
        self.crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
        self.files = files
        self.digests = digests
        self.data = data
        self.entities: dict[str, Any] = {}
        self.params: dict[str, Any] = {}

    def add(self, ident: str, props: dict[str, Any]) -> Any:
        if ident not in self.entities:
            clean = {k: v for k, v in props.items() if v is not None and v != []}
            self.entities[ident] = self.crate.add(ContextEntity(self.crate, ident, clean))
        return self.entities[ident]

    def file(self, f: CrateFile) -> Any:
        if f.crate_path in self.entities:
            return self.entities[f.crate_path]
        in_crate = self.data and f.crate_path not in self.digests.changed
        # A file left out of the payload is named by a local identifier and points to where
        # its bytes are (a file: or s3: URL is not downloadable, so it is not the @id).
        ident = f.crate_path if in_crate else f"#file/{f.crate_path}"
        props: dict[str, Any] = {"name": f.store_path.rsplit("/", 1)[-1] or f.crate_path}
        if not in_crate:
            props["contentUrl"] = _absolute(f.uri, f.is_dir)
        if f.is_dir:
            props["@type"] = "Dataset"
        else:
            props["@type"] = ["File", "ImageObject"] if f.format in _IMAGES else "File"
            props["encodingFormat"] = _MIME.get(f.format)
            if f.crate_path in self.digests.sha256:
                props["sha256"] = self.digests.sha256[f.crate_path]
            size = self.digests.sizes.get(f.crate_path, f.size)
            if size is not None:
                props["contentSize"] = str(size)
        props["identifier"] = f"blake3:{f.hash}"
        if f.metadata:
            props["exifData"] = [
                _ref(self._property(f"#meta/{f.hash[:16]}/{name}", name, value))
                for name, value in f.metadata
            ]
        clean = {k: v for k, v in props.items() if v is not None}
        if not in_crate:  # a contextual entity: rocrate's File would escape the '#'
            entity = self.crate.add(ContextEntity(self.crate, ident, clean))
        elif f.is_dir:
            entity = self.crate.add_dataset(dest_path=ident, properties=clean)
        else:
            entity = self.crate.add(File(self.crate, dest_path=ident, properties=clean))
        self.entities[f.crate_path] = entity
        return entity

    def _property(self, ident: str, name: str, value: Any, **extra: Any) -> Any:
        return self.add(
            ident, {"@type": "PropertyValue", "name": name, "value": _text(value), **extra}
        )

    def formal(self, step: str, kind: str, name: str, additional_type: str) -> Any:
        ident = f"#param/{step}/{kind}/{name}"
        entity = self.add(
            ident,
            {
                "@type": "FormalParameter",
                "name": name,
                "additionalType": additional_type,
                "conformsTo": {
                    "@id": "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"
                },
            },
        )
        self.params[ident] = entity
        return entity

    def example(self, parameter: Any, value_entity: Any) -> None:
        parameter.append_to("workExample", value_entity)
        value_entity.append_to("exampleOfWork", parameter)


def _absolute(uri: str, folder: bool) -> str:
    if "://" in uri:
        return uri.rstrip("/") + ("/" if folder else "")
    return "file://" + uri.rstrip("/") + ("/" if folder else "")


def build(
    *,
    store: Store,
    calls: Sequence[CallRow],
    runs: Sequence[RunRow],
    inputs: dict[str, list[tuple[str, InputRef]]],
    files: dict[str, CrateFile],
    digests: Digests,
    data: bool,
    license: str | None,
) -> ROCrate:
    """The crate's metadata (files are already in place)."""
    b = _Builder(files, digests, data)
    crate = b.crate
    runs_by_id = {r.id: r for r in runs}
    modules = _modules(runs)
    pipelines = sorted({r.pipeline for r in runs}) or ["pipeline"]

    software = {}
    for run in runs:
        for name, version in sorted((run.packages or {}).items()):
            software[name] = b.add(
                f"#software/{name}",
                {"@type": "SoftwareApplication", "name": name, "softwareVersion": str(version)},
            )
    engine = software.get("databacked") or b.add(
        "#software/databacked", {"@type": "SoftwareApplication", "name": "databacked"}
    )
    engine["url"] = "https://pypi.org/project/databacked/"
    python = b.add(
        "#python",
        {
            "@type": "ComputerLanguage",
            "name": "Python",
            "identifier": {"@id": "https://www.python.org/"},
            "url": {"@id": "https://www.python.org/"},
            "version": next((r.python for r in runs if r.python), None),
        },
    )
    workflow = crate.add(
        File(
            crate,
            dest_path=WORKFLOW_FILE,
            properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": " + ".join(pipelines),
                "description": "The databacked pipeline: its steps, their code fingerprints "
                "and Python functions.",
                "encodingFormat": "application/json",
                "programmingLanguage": _ref(python),
            },
        )
    )
    crate.mainEntity = workflow

    produced = {(o.store, o.path) for c in calls for o in c.outputs.values()}
    consumed: set[tuple[str, str]] = set()
    tools: dict[str, Any] = {}
    howtos: dict[str, Any] = {}
    controls: dict[str, list[Any]] = defaultdict(list)
    for call in calls:
        run = runs_by_id.get(call.run_id or "")
        if call.step not in tools:
            tools[call.step] = _tool(
                b, call=call, run=run, modules=modules, python=python, software=software
            )
            workflow.append_to("hasPart", tools[call.step])
            howtos[call.step] = b.add(
                f"#howto/{call.step}",
                {
                    "@type": "HowToStep",
                    "name": call.step,
                    "position": str(len(howtos)),
                    "workExample": _ref(tools[call.step]),
                },
            )
            workflow.append_to("step", howtos[call.step])
        tool = tools[call.step]
        action = b.add(
            f"#call/{call.key}",
            {
                "@type": "CreateAction",
                "name": f"{call.step} {call.key[:12]}",
                "identifier": call.key,
                "instrument": _ref(tool),
                "startTime": iso(call.started),
                "endTime": iso(call.finished),
                "actionStatus": {
                    "@id": f"http://schema.org/{_STATUS.get(call.status, 'FailedActionStatus')}"
                },
                "error": (
                    f"{call.error_type}: {call.error_message}" if call.status != "ok" else None
                ),
                "description": f"One call of step {call.step!r}: its inputs and parameters "
                "(object) and the files it wrote (result).",
                "agent": {"@id": f"#user/{run.user}"} if run and run.user else None,
            },
        )
        container = (call.params or {}).get("container")
        if isinstance(container, dict) and container.get("digest"):
            action["containerImage"] = _ref(_container(b, container))
        file_args = set()
        for name, ref in inputs.get(call.key, ()):
            file_args.add(name)
            if ref.path is None:
                continue
            key = _loc(store, ref)
            consumed.add(key)
            f = files[f"{key[0]}\0{key[1]}"]
            entity = b.file(f)
            action.append_to("object", entity)
            param = b.formal(call.step, "in", name, "Dataset" if f.is_dir else "File")
            _once(tool, "input", param)
            b.example(param, entity)
        for name, value in sorted((call.params or {}).items()):
            if name in file_args:
                continue
            pv = b._property(f"#pv/{call.key[:16]}/{name}", name, value)
            action.append_to("object", pv)
            param = b.formal(call.step, "in", name, _value_type(value))
            _once(tool, "input", param)
            b.example(param, pv)
        for name, art in sorted(call.outputs.items()):
            f = files[f"{art.store}\0{art.path}"]
            entity = b.file(f)
            action.append_to("result", entity)
            param = b.formal(call.step, "out", name, "Dataset" if f.is_dir else "File")
            _once(tool, "output", param)
            b.example(param, entity)
        control = b.add(
            f"#control/{call.key}",
            {
                "@type": "ControlAction",
                "name": f"orchestrate {call.step} {call.key[:12]}",
                "instrument": _ref(howtos[call.step]),
                "object": _ref(action),
            },
        )
        controls[call.run_id or ""].append(control)

    for run_key, run_controls in controls.items():
        run = runs_by_id.get(run_key)
        run_calls = [c for c in calls if (c.run_id or "") == run_key]
        ident = run.id if run else "unknown"
        objects = []
        results = []
        for c in run_calls:
            for _, ref in inputs.get(c.key, ()):
                if ref.path is not None and _loc(store, ref) not in produced:
                    objects.append(_ref(b.file(files["\0".join(_loc(store, ref))])))
            results.extend(_ref(b.file(files[f"{o.store}\0{o.path}"])) for o in c.outputs.values())
        run_action = b.add(
            f"#run/{ident}",
            {
                "@type": "CreateAction",
                "name": f"Run {ident[:12]} of {run.pipeline if run else 'a pipeline'}",
                "identifier": ident,
                "instrument": _ref(workflow),
                "startTime": iso(run.started if run else None),
                "endTime": iso(run.finished if run else None),
                "actionStatus": {
                    "@id": "http://schema.org/"
                    + (
                        "CompletedActionStatus"
                        if run and run.status == "ok"
                        else "FailedActionStatus"
                    )
                },
                "object": _dedupe(objects),
                "result": _dedupe(results),
                "agent": {"@id": f"#user/{run.user}"} if run and run.user else None,
            },
        )
        if run and run.user:
            b.add(f"#user/{run.user}", {"@type": "Person", "name": run.user})
        crate.root_dataset.append_to("mentions", run_action)
        b.add(
            f"#organize/{ident}",
            {
                "@type": "OrganizeAction",
                "name": f"databacked run {ident[:12]}",
                "instrument": _ref(engine),
                "result": _ref(run_action),
                "object": [_ref(c) for c in run_controls],
                "startTime": iso(run.started if run else None),
                "endTime": iso(run.finished if run else None),
            },
        )

    _workflow_parameters(b, workflow, produced, consumed, files)
    _root(b, pipelines, license)
    _compact(crate)
    return crate


def _compact(crate: ROCrate) -> None:
    """RO-Crate 1.1 prefers a single value to a one-item list."""
    for entity in crate.get_entities():
        for name, value in list(entity._jsonld.items()):
            if isinstance(value, list) and len(value) == 1 and name != "@type":
                entity._jsonld[name] = value[0]


def _tool(
    b: _Builder,
    *,
    call: CallRow,
    run: RunRow | None,
    modules: dict[str, str],
    python: Any,
    software: dict[str, Any],
) -> Any:
    function = modules.get(call.step)
    commit = run.git_commit if run else None
    described = [f"databacked step {call.step!r}"]
    if function:
        described.append(f"Python function {function}")
    if commit:
        described.append(
            f"git commit {commit}"
            + (" (with uncommitted changes)" if run and run.git_dirty else "")
        )
    return b.add(
        f"#step/{call.step}",
        {
            "@type": "SoftwareApplication",
            "name": call.step,
            "identifier": call.fingerprint or call.step,
            "softwareVersion": call.fingerprint or None,
            "alternateName": function,
            "description": "; ".join(described) + ".",
            "programmingLanguage": _ref(python),
            "version": commit,
            "softwareRequirements": [_ref(s) for s in software.values()],
        },
    )


def _container(b: _Builder, described: dict[str, Any]) -> Any:
    """A wfrun ContainerImage: the image a spec command ran in, pinned to its digest."""
    digest = str(described["digest"])
    image = str(described.get("image", ""))
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    sif = described.get("runtime") == "apptainer"
    return b.add(
        f"#container/{digest}",
        {
            "@type": "ContainerImage",
            "additionalType": {"@id": WFRUN + ("SIFImage" if sif else "DockerImage")},
            "name": name or image,
            "tag": tag or None,
            "sha256": digest.removeprefix("sha256:"),
            "identifier": digest,
        },
    )


def _loc(store: Store, ref: InputRef) -> tuple[str, str]:
    return (ref.store or store.url, str(ref.path))


def _once(entity: Any, prop: str, value: Any) -> None:
    current = entity.get(prop) or []
    current = current if isinstance(current, list) else [current]
    if not any(c.get("@id") == value.id for c in current if isinstance(c, dict)):
        entity.append_to(prop, value)


def _dedupe(refs: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for ref in refs:
        seen.setdefault(ref["@id"], ref)
    return list(seen.values())


def _workflow_parameters(b, workflow, produced, consumed, files) -> None:
    """The workflow's inputs: step inputs fed by no call; outputs: files no call consumed."""
    for ident, param in b.params.items():
        _, _step, kind, _name = ident.split("/", 3)
        examples = param.get("workExample") or []
        examples = examples if isinstance(examples, list) else [examples]
        ids = {e["@id"] for e in examples if isinstance(e, dict)}
        by_id = {
            b.entities[f.crate_path].id: (f.store_url, f.store_path)
            for f in files.values()
            if f.crate_path in b.entities
        }
        locs = {by_id[i] for i in ids if i in by_id}
        if kind == "in" and (not locs or any(loc not in produced for loc in locs)):
            _once(workflow, "input", param)
        if kind == "out" and any(loc not in consumed for loc in locs):
            _once(workflow, "output", param)


def _root(b: _Builder, pipelines: list[str], license: str | None) -> None:
    crate = b.crate
    root = crate.root_dataset
    root["name"] = f"databacked run of {' + '.join(pipelines)}"
    root["description"] = (
        "Files made by the databacked pipeline "
        + ", ".join(pipelines)
        + ", with how each was made (code, parameters, inputs): a Provenance Run Crate."
    )
    root["datePublished"] = datetime.now(UTC).isoformat(timespec="seconds")
    for ident, name in PROFILES.items():
        profile = b.add(
            ident, {"@type": "CreativeWork", "name": name, "version": ident.rsplit("/", 1)[-1]}
        )
        root.append_to("conformsTo", profile)
    if license:
        lic = b.add(license, {"@type": "CreativeWork", "name": license})
    else:
        lic = b.add(
            "#license-not-chosen",
            {
                "@type": "CreativeWork",
                "name": "No license chosen yet",
                "description": "Choose one before publishing: databacked export rocrate --license.",
            },
        )
    root["license"] = _ref(lic)


__all__ = ["PROFILES", "WFRUN_CONTEXT", "WORKFLOW_FILE", "build", "iso", "workflow_document"]
