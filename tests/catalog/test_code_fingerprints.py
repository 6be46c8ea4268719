"""Kept transform fingerprints (``code_fingerprints``) on every supported database."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from databacked.catalog import Catalog


def test_a_kept_fingerprint_comes_back_and_a_new_one_replaces_it(catalog: Catalog) -> None:
    ref = uuid.uuid4().hex * 2  # 64 characters, like a real ref; unique on shared servers
    # a long project: the sources of one transform can be hundreds of long paths
    many = [(f"/lab/projects/screen-{i:04d}/" + "deep/" * 20 + "helpers.py", f"{i}:1:2")
            for i in range(400)]  # fmt: skip

    missing = catalog.code_fingerprint_get(ref)
    catalog.code_fingerprint_put(ref, "measure@0123456789abcdef", [("/p/steps.py", "10:5:7")])
    first = catalog.code_fingerprint_get(ref)
    catalog.code_fingerprint_put(ref, "measure@fedcba9876543210", many)
    second = catalog.code_fingerprint_get(ref)

    assert missing is None
    assert first == ("measure@0123456789abcdef", [("/p/steps.py", "10:5:7")])
    assert second == ("measure@fedcba9876543210", many)


def test_a_damaged_row_is_asked_again_not_an_error(catalog: Catalog) -> None:
    ref = uuid.uuid4().hex * 2
    catalog.code_fingerprint_put(ref, "measure@0123456789abcdef", [("/p/steps.py", "1:2:3")])
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE code_fingerprints SET sources = 'not json' WHERE ref = :ref"),
            {"ref": ref},
        )

    assert catalog.code_fingerprint_get(ref) is None
