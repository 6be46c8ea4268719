"""Entities of a Provenance Run Crate: files, parameters, tools, images, the root.

``crate_graph.build`` wires them together; this module knows how each one looks (which
schema.org and Workflow Run terms, which identifiers), so the wiring reads as the profile.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rocrate.model.contextentity import ContextEntity
from rocrate.model.file import File
from rocrate.rocrate import ROCrate

from databacked.integrations.crate_files import CrateFile, Digests

if TYPE_CHECKING:
    from databacked.catalog import CallRow, RunRow

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
STATUS = {"ok": "CompletedActionStatus", "failed": "FailedActionStatus"}


def iso(epoch: float | None) -> str | None:
    """ISO 8601 with the UTC offset, as schema.org DateTime wants."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def ref(entity: Any) -> dict[str, str]:
    """A JSON-LD reference to an entity (or to an id)."""
    return {"@id": entity if isinstance(entity, str) else entity.id}


def value_type(value: Any) -> str:
    """The FormalParameter additionalType of a parameter value."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    return "DataStructure"


def text(value: Any) -> Any:
    """A PropertyValue value: scalars as they are, anything else as JSON text."""
    return value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)


class CrateBuilder:
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
            props["contentUrl"] = absolute(f.uri, f.is_dir)
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
                ref(self.property_value(f"#meta/{f.hash[:16]}/{name}", name, value))
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

    def property_value(self, ident: str, name: str, value: Any, **extra: Any) -> Any:
        """A PropertyValue (a call's parameter, an image's metadata field)."""
        return self.add(
            ident, {"@type": "PropertyValue", "name": name, "value": text(value), **extra}
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


def absolute(uri: str, folder: bool) -> str:
    if "://" in uri:
        return uri.rstrip("/") + ("/" if folder else "")
    return "file://" + uri.rstrip("/") + ("/" if folder else "")


def compact(crate: ROCrate) -> None:
    """RO-Crate 1.1 prefers a single value to a one-item list."""
    for entity in crate.get_entities():
        for name, value in list(entity._jsonld.items()):
            if isinstance(value, list) and len(value) == 1 and name != "@type":
                entity._jsonld[name] = value[0]


def tool(
    b: CrateBuilder,
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
            "programmingLanguage": ref(python),
            "version": commit,
            "softwareRequirements": [ref(s) for s in software.values()],
        },
    )


def container(b: CrateBuilder, described: dict[str, Any]) -> Any:
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


def once(entity: Any, prop: str, value: Any) -> None:
    """Add a reference to ``value`` under ``prop`` unless it is there already."""
    current = entity.properties().get(prop) or []  # raw JSON-LD: get() would dereference
    current = current if isinstance(current, list) else [current]
    if not any(c.get("@id") == value.id for c in current if isinstance(c, dict)):
        entity.append_to(prop, value)


def dedupe(refs: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for ref in refs:
        seen.setdefault(ref["@id"], ref)
    return list(seen.values())


def root(b: CrateBuilder, pipelines: list[str], license: str | None) -> None:
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
    root["license"] = ref(lic)


__all__ = [
    "PROFILES",
    "STATUS",
    "WFRUN",
    "WFRUN_CONTEXT",
    "CrateBuilder",
    "absolute",
    "compact",
    "container",
    "dedupe",
    "iso",
    "once",
    "ref",
    "root",
    "text",
    "tool",
    "value_type",
]
