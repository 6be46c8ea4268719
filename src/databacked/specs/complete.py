"""Declared completeness of group datums: an expected member count, or a manifest file.

A plate reducer must not fire on a plate whose images are still arriving. Besides "no
upstream datum pending" (the runner's business), a group member may declare::

    complete: {count: 96}                                   # 96 files of this input
    complete: {manifest: {repo: plans, path: "{group}.txt"}} # every listed path present

A manifest is a text file (one member path per line, ``#`` comments) or a CSV (the ``path``
column, else the first column). Listed paths are relative to the member's repo; a leading
``/`` or ``<repo>/`` is accepted too.
"""

from __future__ import annotations

import csv
import io

from databacked.errors import ArtifactNotFound, SpecError
from databacked.specs.datums import Datum
from databacked.specs.model import Count, Input, Manifest, PfsInput, Spec
from databacked.store import Store


def is_complete(
    datum: Datum, spec_group: Spec | Input | PfsInput, store: Store
) -> tuple[bool, str]:
    """Whether ``datum`` meets the completeness its group declares, and why (or why not)."""
    members = _declaring(spec_group)
    if not members:
        return True, "no completeness declared"
    reasons = []
    for member in members:
        ok, reason = _member_complete(datum, member, store)
        if not ok:
            return False, reason
        reasons.append(reason)
    return True, "; ".join(reasons)


def _declaring(spec_group: Spec | Input | PfsInput) -> list[PfsInput]:
    if isinstance(spec_group, PfsInput):
        return [spec_group] if spec_group.complete is not None else []
    inp = spec_group.input if isinstance(spec_group, Spec) else spec_group
    return [p for p in inp.pfs_inputs() if p.complete is not None]


def _member_complete(datum: Datum, member: PfsInput, store: Store) -> tuple[bool, str]:
    present = [f for f in datum.files if f.repo == member.repo and f.input == member.input_name]
    rule = member.complete
    if isinstance(rule, Count):
        have = len(present)
        if have >= rule.count:
            return True, f"{have} of {rule.count} expected files of '{member.input_name}'"
        return False, (
            f"{have} of {rule.count} expected files of '{member.input_name}' are present"
        )
    assert isinstance(rule, Manifest)  # the model allows only Count or Manifest
    where = _manifest_path(rule, datum)
    try:
        text = store.read_bytes(where).decode("utf-8", errors="replace")
    except ArtifactNotFound:
        return False, f"manifest {where} does not exist yet"
    listed = _listed(text, where)
    have = {f.path for f in present}
    prefix = member.repo + "/"
    missing = [m for m in listed if (m[len(prefix) :] if m.startswith(prefix) else m) not in have]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        return False, (
            f"{len(missing)} of {len(listed)} members listed in manifest {where} "
            f"are missing ({shown})"
        )
    return True, f"all {len(listed)} members listed in manifest {where} are present"


def _manifest_path(rule: Manifest, datum: Datum) -> str:
    fields = {"group": datum.group or "", "datum": datum.id, **datum.attributes}
    try:
        path = rule.manifest.path.format_map(fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise SpecError(
            f"manifest path '{rule.manifest.path}' uses a placeholder this datum cannot fill "
            f"({exc}); use {{group}}, {{datum}} or a named capture ({', '.join(datum.attributes)})."
        ) from exc
    return f"{rule.manifest.repo.strip('/')}/{path.lstrip('/')}"


def _listed(text: str, where: str) -> list[str]:
    """Member paths named by a manifest, in order, without duplicates."""
    if where.lower().endswith(".csv"):
        rows = [row for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
        column = 0
        if rows and "path" in [c.strip().lower() for c in rows[0]]:
            column = [c.strip().lower() for c in rows[0]].index("path")
            rows = rows[1:]
        entries = [row[column] for row in rows if len(row) > column]
    else:
        entries = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return list(dict.fromkeys(e.strip().lstrip("/") for e in entries if e.strip()))


__all__ = ["is_complete"]
