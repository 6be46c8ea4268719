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
from typing import TYPE_CHECKING, Any

from rocrate.model.file import File
from rocrate.rocrate import ROCrate

from databacked.integrations import crate_entities as ent
from databacked.integrations.crate_files import CrateFile, Digests

if TYPE_CHECKING:
    from databacked.catalog import CallRow, InputRef, RunRow
    from databacked.store import Store

WORKFLOW_FILE = "pipeline.json"
"""The crate's mainEntity: the pipeline's steps, fingerprints and modules, as JSON."""


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
    b = ent.CrateBuilder(files, digests, data)
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
                "programmingLanguage": ent.ref(python),
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
            tools[call.step] = ent.tool(
                b, call=call, run=run, modules=modules, python=python, software=software
            )
            workflow.append_to("hasPart", tools[call.step])
            howtos[call.step] = b.add(
                f"#howto/{call.step}",
                {
                    "@type": "HowToStep",
                    "name": call.step,
                    "position": str(len(howtos)),
                    "workExample": ent.ref(tools[call.step]),
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
                "instrument": ent.ref(tool),
                "startTime": ent.iso(call.started),
                "endTime": ent.iso(call.finished),
                "actionStatus": {
                    "@id": f"http://schema.org/{ent.STATUS.get(call.status, 'FailedActionStatus')}"
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
            action["containerImage"] = ent.ref(ent.container(b, container))
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
            ent.once(tool, "input", param)
            b.example(param, entity)
        for name, value in sorted((call.params or {}).items()):
            if name in file_args:
                continue
            pv = b.property_value(f"#pv/{call.key[:16]}/{name}", name, value)
            action.append_to("object", pv)
            param = b.formal(call.step, "in", name, ent.value_type(value))
            ent.once(tool, "input", param)
            b.example(param, pv)
        for name, art in sorted(call.outputs.items()):
            f = files[f"{art.store}\0{art.path}"]
            entity = b.file(f)
            action.append_to("result", entity)
            param = b.formal(call.step, "out", name, "Dataset" if f.is_dir else "File")
            ent.once(tool, "output", param)
            b.example(param, entity)
        control = b.add(
            f"#control/{call.key}",
            {
                "@type": "ControlAction",
                "name": f"orchestrate {call.step} {call.key[:12]}",
                "instrument": ent.ref(howtos[call.step]),
                "object": ent.ref(action),
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
                    objects.append(ent.ref(b.file(files["\0".join(_loc(store, ref))])))
            results.extend(
                ent.ref(b.file(files[f"{o.store}\0{o.path}"])) for o in c.outputs.values()
            )
        run_action = b.add(
            f"#run/{ident}",
            {
                "@type": "CreateAction",
                "name": f"Run {ident[:12]} of {run.pipeline if run else 'a pipeline'}",
                "identifier": ident,
                "instrument": ent.ref(workflow),
                "startTime": ent.iso(run.started if run else None),
                "endTime": ent.iso(run.finished if run else None),
                "actionStatus": {
                    "@id": "http://schema.org/"
                    + (
                        "CompletedActionStatus"
                        if run and run.status == "ok"
                        else "FailedActionStatus"
                    )
                },
                "object": ent.dedupe(objects),
                "result": ent.dedupe(results),
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
                "instrument": ent.ref(engine),
                "result": ent.ref(run_action),
                "object": [ent.ref(c) for c in run_controls],
                "startTime": ent.iso(run.started if run else None),
                "endTime": ent.iso(run.finished if run else None),
            },
        )

    _workflow_parameters(b, workflow, produced, consumed, files)
    ent.root(b, pipelines, license)
    ent.compact(crate)
    return crate


def _loc(store: Store, ref: InputRef) -> tuple[str, str]:
    return (ref.store or store.url, str(ref.path))


def _workflow_parameters(b, workflow, produced, consumed, files) -> None:
    """The workflow's inputs: step inputs fed by no call; outputs: files no call consumed."""
    by_id = {
        b.entities[f.crate_path].id: (f.store_url, f.store_path)
        for f in files.values()
        if f.crate_path in b.entities
    }
    for ident, param in b.params.items():
        _, _step, kind, _name = ident.split("/", 3)
        examples = param.properties().get("workExample") or []
        examples = examples if isinstance(examples, list) else [examples]
        ids = {e["@id"] for e in examples if isinstance(e, dict)}
        locs = {by_id[i] for i in ids if i in by_id}
        if kind == "in" and (not locs or any(loc not in produced for loc in locs)):
            ent.once(workflow, "input", param)
        if kind == "out" and any(loc not in consumed for loc in locs):
            ent.once(workflow, "output", param)


__all__ = ["WORKFLOW_FILE", "build", "workflow_document"]
