"""The declarative pipeline spec (``pipelines/*.yml``) as pydantic models, and its JSON Schema.

Two spellings are accepted for the same spec, so a Pachyderm user's file needs only its
image/command adjusted: DESIGN's shorthand (``group: [{repo, glob, group_by}]``,
``pipeline: measure``) and Pachyderm's own (``input: {pfs: {...}}``, ``pipeline: {name: ...}``,
``transform: {cmd, stdin, image}``, ``datum_tries``). Unknown fields are errors that suggest
the closest known field; ``loading.py`` turns them into one sentence with a file and line.

Example::

    spec = Spec.model_validate({"pipeline": "edges", "input": {"pfs": {"repo": "images",
                                "glob": "/*"}}, "transform": {"cmd": ["python3", "edges.py"]}})
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_NAME_RE = re.compile(NAME_PATTERN)
_PYTHON_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_KINDS = ("pfs", "cross", "union", "join", "group")


class _Strict(BaseModel):
    """Base of every spec model: unknown fields are errors with a "did you mean"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise PydanticCustomError(
                    "unknown_field",
                    "unknown field '{field}'{hint}",
                    {"field": str(key), "hint": hint, "known": sorted(known)},
                )
        return data


class Count(_Strict):
    """Completeness by number: the group is complete once this many members are present."""

    count: int = Field(ge=1, description="Expected number of member files of this input.")


class ManifestRef(_Strict):
    """Where a manifest lives: a text or CSV file in a repo listing the expected members."""

    repo: str = Field(description="Repo that holds the manifest file.")
    path: str = Field(
        description="Path inside the repo; '{group}' and '{attribute}' placeholders are filled "
        "from the group datum (e.g. 'manifests/{group}.txt')."
    )


class Manifest(_Strict):
    """Completeness by manifest: the group is complete once every listed member is present."""

    manifest: ManifestRef


def _completeness_kind(value: Any) -> str:
    # Pick the branch by its key, so a typo inside a manifest is reported against Manifest
    # instead of as "unknown field 'manifest'" from the Count branch.
    if isinstance(value, dict):
        return "manifest" if "manifest" in value else "count"
    return "manifest" if isinstance(value, Manifest) else "count"


Completeness = Annotated[
    Annotated[Count, Tag("count")] | Annotated[Manifest, Tag("manifest")],
    Discriminator(_completeness_kind),
]


class PfsInput(_Strict):
    """One repo matched by a glob (Pachyderm's ``pfs`` input)."""

    repo: str = Field(description="Repo (top-level folder of the store) to read.")
    glob: str = Field(
        description="Pachyderm glob: '/' whole repo, '/*' each top-level entry, '/*/*', '**', "
        "'(*)' capture groups ($1...), '(?P<name>*)' named captures."
    )
    name: str | None = Field(None, description="Name of this input (default: the repo name).")
    names: list[str] | None = Field(None, description="Attribute names for $1, $2, ...")
    branch: str | None = Field(None, description="Accepted for Pachyderm specs; ignored.")
    project: Any = Field(None, description="Accepted for Pachyderm specs; ignored.")
    lazy: bool = False
    empty_files: bool = False
    join_on: str | None = Field(None, description="Join key built from captures, e.g. '$1'.")
    outer_join: bool = Field(False, description="Keep this input's datums without a partner.")
    group_by: str | None = Field(None, description="Group key built from captures, e.g. '$1'.")
    complete: Completeness | None = Field(
        None, description="When a group is complete: {count: N} or {manifest: {repo, path}}."
    )

    @property
    def input_name(self) -> str:
        """The folder this input's files are laid out under (Pachyderm's ``/pfs/<name>``)."""
        return self.name or self.repo


class Input(_Strict):
    """Exactly one of ``pfs``, ``cross``, ``union``, ``join`` or ``group``; nestable.

    A mapping with ``repo`` (no ``pfs:``) is DESIGN's shorthand for a ``pfs`` input.
    """

    pfs: PfsInput | None = None
    cross: list[Input] | None = None
    union: list[Input] | None = None
    join: list[Input] | None = None
    group: list[Input] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "repo" in data and "pfs" not in data:
            return {"pfs": data}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) == 1 and given[0] != "pfs" and not getattr(self, given[0]):
            raise PydanticCustomError(
                "input_empty", "{kind} needs at least one input", {"kind": given[0]}
            )
        if len(given) != 1:
            raise PydanticCustomError(
                "input_kind",
                "an input needs exactly one of pfs, cross, union, join or group (got {got})",
                {"got": ", ".join(given) or "none"},
            )
        return self

    @property
    def kind(self) -> Literal["pfs", "cross", "union", "join", "group"]:
        for k in _KINDS:
            if getattr(self, k) is not None:
                return k  # type: ignore[return-value]
        raise AssertionError("validated Input without a kind")

    @property
    def children(self) -> list[Input]:
        return [] if self.pfs else list(getattr(self, self.kind))

    def pfs_inputs(self) -> list[PfsInput]:
        """Every ``pfs`` leaf of this input tree, in order."""
        if self.pfs:
            return [self.pfs]
        return [leaf for child in self.children for leaf in child.pfs_inputs()]


class Transform(_Strict):
    """What runs per datum: a Python function or a command."""

    python: str | None = Field(None, description="'module:function' called with the datum.")
    cmd: list[str] | None = Field(
        None, description="Command; {input_dir}, {output_dir}, {datum} and $1... are filled in."
    )
    stdin: list[str] | None = Field(None, description="Lines fed to the command's stdin.")
    env: dict[str, str] = Field(default_factory=dict)
    image: str | None = Field(
        None,
        description="Container image a 'cmd' runs in ([containers] runtime); its digest is "
        "part of the key.",
    )
    accept_return_code: list[int] = Field(default_factory=list)
    working_dir: str | None = Field(None, description="Accepted for Pachyderm specs; ignored.")
    user: str | None = Field(None, description="Accepted for Pachyderm specs; ignored.")
    secrets: list[dict[str, Any]] | None = Field(None, description="Accepted; ignored.")
    image_pull_secrets: list[str] | None = Field(None, description="Accepted; ignored.")
    version: str | None = Field(None, description="Explicit version for the transform's key.")

    @model_validator(mode="after")
    def _one_kind(self) -> Transform:
        if (self.python is None) == (self.cmd is None):
            raise PydanticCustomError(
                "transform_kind", "a transform needs exactly one of 'python' or 'cmd'"
            )
        if self.python is not None and not _PYTHON_RE.match(self.python):
            raise PydanticCustomError(
                "python_ref",
                "transform.python must look like 'package.module:function', not '{value}'",
                {"value": self.python},
            )
        if self.cmd is not None and not self.cmd:
            raise PydanticCustomError("empty_cmd", "transform.cmd must not be empty")
        if self.stdin is not None and self.cmd is None:
            raise PydanticCustomError("stdin_python", "transform.stdin needs a 'cmd' transform")
        return self


class Output(_Strict):
    """Hints for how a Python transform's returned values are written into the output repo."""

    format: str | None = Field(None, description="Format name for returned values (e.g. csv).")
    target: str | None = Field(
        None, description="Path template inside the output repo, e.g. '{datum}/result.csv'."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Options of the format.")


class Resources(_Strict):
    """Resources a datum needs (used by executors that can honour them)."""

    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    disk: str | None = None


class Spec(_Strict):
    """One pipeline: its name (also its output repo), input, transform and options."""

    pipeline: str = Field(description="Pipeline name; its outputs form the repo of that name.")
    description: str | None = None
    input: Input
    transform: Transform
    output: Output = Field(default_factory=Output)
    resources: Resources | None = None
    resource_requests: Resources | None = Field(None, description="Pachyderm spelling.")
    resource_limits: Resources | None = Field(None, description="Pachyderm spelling; ignored.")
    queue: str | None = Field(
        None,
        description="Celery queue of this pipeline's datums, consumed by the workers started "
        "with `databacked worker --queues NAME` (a GPU machine's, say); other executors "
        "ignore it.",
    )
    retries: int = Field(0, ge=0)
    datum_tries: int | None = Field(None, ge=1, description="Pachyderm: tries = retries + 1.")
    parallelism_spec: dict[str, Any] | None = Field(None, description="Accepted; ignored.")
    autoscaling: bool | None = Field(None, description="Accepted; ignored.")
    datum_timeout: str | float | None = Field(
        None, description="Longest one datum may run: seconds or a duration ('90s', '1h30m')."
    )
    job_timeout: str | float | None = Field(
        None, description="Longest the pipeline's datums of one run may take, same spelling."
    )
    metadata: dict[str, Any] | None = Field(None, description="Accepted; ignored.")
    output_branch: str | None = Field(None, description="Accepted; ignored.")
    key_by: Literal["path", "content"] = Field(
        "path", description="'content': byte-identical datums under other names share results."
    )
    _source: str = PrivateAttr("")
    _line: int = PrivateAttr(0)

    @model_validator(mode="before")
    @classmethod
    def _pipeline_mapping(cls, data: Any) -> Any:
        # Pachyderm writes `pipeline: {name: edges}`; DESIGN writes `pipeline: edges`.
        if isinstance(data, dict) and isinstance(data.get("pipeline"), dict):
            ref = data["pipeline"]
            extra = sorted(set(ref) - {"name", "project"})
            if extra or "name" not in ref:
                raise PydanticCustomError(
                    "pipeline_mapping",
                    "pipeline must be a name or a mapping with a 'name' key (got keys {keys})",
                    {"keys": ", ".join(map(str, ref))},
                )
            data = {**data, "pipeline": ref["name"]}
        return data

    @model_validator(mode="after")
    def _normalise(self) -> Spec:
        if not _NAME_RE.match(self.pipeline):
            raise PydanticCustomError(
                "pipeline_name",
                "pipeline name '{name}' may hold only letters, digits, '_', '-' and '.'",
                {"name": self.pipeline},
            )
        if self.queue is not None and (not self.queue.strip() or self.queue != self.queue.strip()):
            raise PydanticCustomError(
                "queue",
                "queue '{queue}' is not a queue name; give the name of a Celery queue, such as gpu",
                {"queue": self.queue},
            )
        if self.datum_tries is not None and self.retries == 0:
            self.retries = self.datum_tries - 1
        if self.resources is None and self.resource_requests is not None:
            self.resources = self.resource_requests
        for name in ("datum_timeout", "job_timeout"):
            if duration_seconds(getattr(self, name)) == -1.0:
                raise PydanticCustomError(
                    "duration",
                    "{field} '{value}' is not a duration; write seconds or e.g. '90s', '1h30m'",
                    {"field": name, "value": getattr(self, name)},
                )
        return self

    @property
    def name(self) -> str:
        return self.pipeline

    @property
    def origin(self) -> str:
        """Where the spec was read from, for messages: ``'pipelines/m.yml, line 1'``."""
        if not self._source:
            return f"pipeline '{self.pipeline}'"
        return f"{self._source}, line {self._line}"

    def located(self, source: str, line: int) -> Spec:
        """Record the file and line this spec was read from (see ``origin``)."""
        self._source, self._line = source, line
        return self

    def input_repos(self) -> list[str]:
        """Repos this pipeline reads, without duplicates, in spec order."""
        return list(dict.fromkeys(p.repo for p in self.input.pfs_inputs()))

    def notes(self) -> list[str]:
        """Fields accepted for Pachyderm compatibility that databacked does not act on."""
        out = []
        ignored = [
            *(f for f in _IGNORED_SPEC if getattr(self, f) is not None),
            *(f"transform.{f}" for f in _IGNORED_TRANSFORM if getattr(self.transform, f)),
            *{f"pfs.{f}" for p in self.input.pfs_inputs() for f in _IGNORED_PFS if getattr(p, f)},
        ]
        if ignored:
            out.append(
                f"pipeline '{self.pipeline}': {', '.join(sorted(ignored))} accepted for "
                "Pachyderm compatibility and ignored."
            )
        return out


_IGNORED_SPEC = (
    "parallelism_spec",
    "autoscaling",
    "metadata",
    "output_branch",
    "resource_limits",
)
_IGNORED_TRANSFORM = ("working_dir", "user", "secrets", "image_pull_secrets")
_IGNORED_PFS = ("branch", "project")


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s)")


def duration_seconds(value: str | float | None) -> float | None:
    """Seconds of a duration in Pachyderm's (Go's) spelling, ``"1h30m"``, or plain seconds;
    None for no value, -1.0 for a value that is not a duration."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else -1.0
    text = value.strip()
    try:
        return float(text) if float(text) > 0 else -1.0
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return -1.0
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total = sum(float(n) * scale[u] for n, u in parts)
    return total if total > 0 else -1.0


def spec_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a spec document (``databacked spec schema`` prints it)."""
    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    # Runtime accepts the shorthand {repo, glob, ...} wherever an input goes; say so.
    defs["Input"] = {
        "description": defs["Input"].get("description", ""),
        "anyOf": [
            {k: v for k, v in defs["Input"].items() if k != "description"},
            {"$ref": "#/$defs/PfsInput"},
        ],
    }
    schema["properties"]["pipeline"] = {
        "description": schema["properties"]["pipeline"].get("description", ""),
        "anyOf": [
            {"type": "string", "pattern": NAME_PATTERN},
            {
                "type": "object",
                "properties": {"name": {"type": "string", "pattern": NAME_PATTERN}, "project": {}},
                "required": ["name"],
                "additionalProperties": False,
            },
        ],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "databacked pipeline spec"
    return schema


__all__ = [
    "Count",
    "Input",
    "Manifest",
    "ManifestRef",
    "Output",
    "PfsInput",
    "Resources",
    "Spec",
    "Transform",
    "duration_seconds",
    "spec_json_schema",
]
