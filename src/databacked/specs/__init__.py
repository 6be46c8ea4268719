"""Declarative pipelines: specs in ``pipelines/*.yml`` matched into datums (DESIGN section 7).

``model`` holds the spec schema, ``loading`` reads files with line-numbered errors, ``graph``
orders pipelines by the repos they read, ``globs`` translates Pachyderm globs, ``datums``
matches inputs into datums and keys them, ``complete`` checks declared group completeness.

The names below are imported on first use: a worker that runs datums
(``specs.transform.run_datum``) imports neither pydantic nor YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databacked.specs.complete import is_complete
    from databacked.specs.datums import Datum, DatumFile, datum_id, datum_key, match_datums
    from databacked.specs.graph import spec_order
    from databacked.specs.loading import load_specs, load_text
    from databacked.specs.model import Input, PfsInput, Spec, Transform, spec_json_schema

WORKER_MODULES = ("databacked.engine.worker", "databacked.specs.transform")
"""What a worker running datums imports before its first one (``Executor.warm``)."""

_WHERE = {
    "is_complete": "complete",
    "Datum": "datums",
    "DatumFile": "datums",
    "datum_id": "datums",
    "datum_key": "datums",
    "match_datums": "datums",
    "spec_order": "graph",
    "load_specs": "loading",
    "load_text": "loading",
    "Input": "model",
    "PfsInput": "model",
    "Spec": "model",
    "Transform": "model",
    "spec_json_schema": "model",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'databacked.specs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"databacked.specs.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "WORKER_MODULES",
    "Datum",
    "DatumFile",
    "Input",
    "PfsInput",
    "Spec",
    "Transform",
    "datum_id",
    "datum_key",
    "is_complete",
    "load_specs",
    "load_text",
    "match_datums",
    "spec_json_schema",
    "spec_order",
]
