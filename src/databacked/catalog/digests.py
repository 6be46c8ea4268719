"""sha256 digests kept beside the blake3 content hashes, for publication formats.

Keys and caching use blake3; RO-Crate (and most repositories) want sha256. A content's
sha256 is computed once, by whoever first needs it, and kept by blake3 hash, so the same
bytes under many names or in many exports are never read for it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from databacked.catalog.dml import chunks, dedupe, insert_ignore
from databacked.catalog.schema import content_digests


def sha256_get(conn: sa.Connection, hashes: Sequence[str]) -> dict[str, tuple[str, int]]:
    """blake3 hash -> (sha256, size) for the contents whose sha256 is known."""
    found: dict[str, tuple[str, int]] = {}
    for chunk in chunks(sorted(set(hashes))):
        query = sa.select(
            content_digests.c.hash, content_digests.c.sha256, content_digests.c.size
        ).where(content_digests.c.hash.in_(chunk))
        found.update({h: (s, int(n)) for h, s, n in conn.execute(query)})
    return found


def sha256_put(conn: sa.Connection, rows: Iterable[tuple[str, str, int]]) -> None:
    """Remember (blake3 hash, sha256, size); a content recorded twice is harmless."""
    values = dedupe(({"hash": h, "sha256": s, "size": n} for h, s, n in rows), lambda r: r["hash"])
    if values:
        conn.execute(insert_ignore(conn.dialect.name, content_digests), values)


__all__ = ["sha256_get", "sha256_put"]
