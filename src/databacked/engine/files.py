"""Content hashes of ``db.File`` inputs, trusted by ``stat`` through the catalog's stat cache.

An unchanged input file is never read again: its (mtime, inode, size) stamp matches the
cached one. A file younger than the filesystem's timestamp tick could change without its
stamp moving ("racy" stat, as git calls it), so such files are hashed every time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from databacked.errors import ArtifactNotFound
from databacked.hashing import RACY_NS, hash_file, local_stamp

if TYPE_CHECKING:
    from databacked.engine.plan import CallState

LOCAL_FILES = "file://"
"""Stat-cache namespace for input files given as local paths (outside any store)."""
MISSING_FILE_HANDLERS: list[Callable[[list[str]], None]] = []
"""Called with the input files of ready calls that are dangling symlinks (annexed content not
present here) before they are hashed; the DataLad integration fetches exactly those."""


class FileHasher:
    """Content hashes of ``db.File`` inputs, through the catalog's stat cache."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.memo: dict[str, str] = {}
        self.known: dict[str, tuple[str, str] | None] = {}
        """(stamp, digest) of paths asked of the stat cache; None where it had none."""
        self.fresh: list[tuple[str, str, int, str]] = []

    def prefetch(self, states: list[CallState]) -> None:
        """One stat-cache query for the local input files of many calls."""
        paths = set()
        for state in states:
            for name in state.node.step.file_params():
                value = state.node.args.get(name)
                if value is not None and "://" not in str(value):
                    paths.add(os.path.abspath(str(value)))
        if MISSING_FILE_HANDLERS:  # no extra stat at all unless someone asked
            dangling = sorted(p for p in paths if os.path.islink(p) and not os.path.exists(p))
            for handler in MISSING_FILE_HANDLERS if dangling else ():
                handler(dangling)
        paths -= set(self.known)
        if paths:
            found = self.catalog.stat_cache_get(LOCAL_FILES, paths)
            # misses are remembered too, or each would be asked again, one query a file
            self.known.update({path: found.get(path) for path in paths})

    def flush(self) -> None:
        """Remember the files hashed since the last flush, in one write."""
        if self.fresh:
            rows, self.fresh = self.fresh, []
            self.catalog.stat_cache_put(LOCAL_FILES, rows)

    def hash(self, path: str, step: str, param: str) -> str:
        if path in self.memo:
            return self.memo[path]
        if "://" in path:
            digest = hash_file(path)
        else:
            absolute = os.path.abspath(path)
            try:
                st = os.stat(absolute)
            except FileNotFoundError as exc:
                raise ArtifactNotFound(
                    f"Input file {path!r} (parameter {param!r} of step {step!r}) does not "
                    "exist; check the path or create the file before running."
                ) from exc
            stamp = local_stamp(st)
            if absolute not in self.known:
                self.known.update(self.catalog.stat_cache_get(LOCAL_FILES, [absolute]))
            cached = self.known.get(absolute)
            if cached is not None and cached[0] == stamp:
                digest = cached[1]
            else:
                digest = hash_file(absolute)
                # A file changed within the filesystem's timestamp tick keeps its mtime
                # ("racy" stat, as git calls it): remember only files older than that.
                if time.time_ns() - st.st_mtime_ns > RACY_NS:
                    self.known[absolute] = (stamp, digest)
                    self.fresh.append((absolute, stamp, st.st_size, digest))
        self.memo[path] = digest
        return digest


__all__ = ["LOCAL_FILES", "RACY_NS", "FileHasher"]
