"""The attic: outputs of removed or overwritten datums, kept by content so they can come back.

A datum whose inputs disappear has its outputs moved here, and outputs about to be overwritten
by a re-run are linked (or copied) here first. When a key comes back (files removed and re-added,
a reducer's group back to an earlier state) its outputs are moved back instead of recomputed.
The attic lies in the store's object area, so ``gc`` frees it: nothing in the catalog
references it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from databacked.engine.worker import OBJECTS
from databacked.errors import DatabackedError
from databacked.store import FileInfo, Store


def attic_path(pipeline: str, digest: str) -> str:
    """Where a removed datum's output waits (by content) in case its inputs come back.

    It lies in the object area, so ``gc`` frees it: nothing references it in the catalog.
    """
    return f"{OBJECTS}/removed/{pipeline}/{digest}"


def restorable(
    store: Store, pipeline: str, row: Any, output_infos: Mapping[str, FileInfo]
) -> list[tuple[str, str]]:
    """(attic path, output path) moves that give a completed call its outputs back, or [] when
    any of its missing or replaced outputs is not in the attic."""
    moves = []
    for art in row.outputs.values():
        info = output_infos.get(art.path)
        if info is None or info.size != art.size or info.stamp != art.stamp:
            moves.append((attic_path(pipeline, art.hash), art.path))
    found = store.infos([src for src, _dst in moves]) if moves else {}
    return moves if all(found.get(src) is not None for src, _dst in moves) else []


def stash(
    store: Store,
    pipeline: str,
    path: str,
    tracked: tuple[str, str] | None,
    info: FileInfo | None,
    *,
    move: bool,
) -> bool:
    """Put the recorded output at ``path`` aside by content (moved, or linked/copied when it
    stays); False when the file there is not the one the catalog recorded.

    ``tracked`` is the (hash, stamp) the catalog recorded for ``path``; ``info`` its listing.
    """
    if tracked is None or info is None or info.stamp != tracked[1]:
        return False
    target = attic_path(pipeline, tracked[0])
    return move_file(store, path, target) if move else copy_file(store, path, target)


def move_file(store: Store, src: str, dst: str) -> bool:
    """Move a file inside the store (a rename locally); False when it cannot."""
    try:
        if store.is_local:
            target = store.local_path(dst)
            assert target is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(store.full_path(src), target)
        else:
            store.fs.mv(store.full_path(src), store.full_path(dst))
    except (OSError, DatabackedError):
        return False
    return True


def copy_file(store: Store, src: str, dst: str) -> bool:
    """Copy a file inside the store (a hard link locally); False when it cannot."""
    try:
        if store.exists(dst):
            return True
        if store.is_local:
            source, target = store.local_path(src), store.local_path(dst)
            assert source is not None and target is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # writes replace files by rename: the link keeps them
            except OSError:
                shutil.copyfile(source, target)
        else:
            store.fs.copy(store.full_path(src), store.full_path(dst))
    except (OSError, DatabackedError):
        return False
    return True


__all__ = ["attic_path", "copy_file", "move_file", "restorable", "stash"]
