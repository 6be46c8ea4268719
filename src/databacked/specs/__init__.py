"""Declarative pipelines: specs in ``pipelines/*.yml`` matched into datums (DESIGN section 7).

``model`` holds the spec schema, ``loading`` reads files with line-numbered errors, ``graph``
orders pipelines by the repos they read, ``globs`` translates Pachyderm globs, ``datums``
matches inputs into datums and keys them, ``complete`` checks declared group completeness.
"""

from databacked.specs.complete import is_complete
from databacked.specs.datums import Datum, DatumFile, datum_id, datum_key, match_datums
from databacked.specs.graph import spec_order
from databacked.specs.loading import load_specs, load_text
from databacked.specs.model import Input, PfsInput, Spec, Transform, spec_json_schema

__all__ = [
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
