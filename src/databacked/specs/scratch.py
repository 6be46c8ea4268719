"""Scratch folders for datums, kept by a worker between datums instead of made and removed.

Each datum sees a folder of its own: a path no earlier datum had, an empty ``out/`` and an
``in/`` holding only its own files. Making and removing those folders for every datum cost
more than small transforms do (ext4 mounted with ``discard`` takes milliseconds for each
``rmdir``), so a finished datum's folder is emptied (its files unlinked, the folders it made
under ``out/`` removed) and renamed to a new unique name for the next datum; folders under
``in/`` stay while the next datum's layout uses them. A folder that cannot be emptied (a
transform changed its permissions) is removed and the next datum gets a new one; the kept
folders go when the process exits.

Example::

    with scratch(["images/a.png"]) as root:
        (root / "in" / "images").is_dir()  # True, and empty
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

PREFIX = "databacked-datum-"
_lock = threading.Lock()
_free: list[str] = []
"""Emptied folders of this process, ready for the next datum (one per running thread)."""
_owner = [os.getpid()]
"""The process ``_free`` belongs to (a forked child starts with none of its own)."""


@contextlib.contextmanager
def scratch(layout: Iterable[str]) -> Iterator[Path]:
    """A folder with an empty ``out/`` and an empty ``in/`` holding no folders but those the
    paths of ``layout`` (under ``in/``) lie in, under a name used once."""
    root = _take()
    try:
        _prepare(root, layout)
        yield Path(root)
    finally:
        if _empty(root):
            with _lock:
                _free.append(root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _take() -> str:
    with _lock:
        if _owner[0] != os.getpid():  # a forked child: the parent's folders are the parent's
            _free.clear()
            _owner[0] = os.getpid()
        old = _free.pop() if _free else None
    if old is not None:
        new = os.path.join(os.path.dirname(old), PREFIX + secrets.token_hex(8))
        try:
            os.rename(old, new)  # a new path for every datum, without a new folder
            return new
        except OSError:
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=PREFIX)


def _prepare(root: str, layout: Iterable[str]) -> None:
    inputs = os.path.join(root, "in")
    needed = {inputs}
    for path in layout:
        folder = os.path.dirname(os.path.join(inputs, path))
        while folder not in needed and len(folder) > len(inputs):
            needed.add(folder)
            folder = os.path.dirname(folder)
    for folder, dirs, _files in os.walk(inputs, topdown=False):
        for name in dirs:  # emptied after the last datum: only folders are left
            path = os.path.join(folder, name)
            if path not in needed:
                os.rmdir(path)
    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    os.makedirs(inputs, exist_ok=True)


def _empty(root: str) -> bool:
    """Unlink every file and link, remove every folder but ``in/`` and those under it."""
    inputs = os.path.join(root, "in")
    keep = (root, inputs, os.path.join(root, "out"))
    try:
        for folder, dirs, files in os.walk(root, topdown=False):
            for name in files:
                os.unlink(os.path.join(folder, name))
            for name in dirs:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    os.unlink(path)
                elif path not in keep and not path.startswith(inputs + os.sep):
                    os.rmdir(path)
        return sorted(os.listdir(root)) in (["in", "out"], ["in"], ["out"], [])
    except OSError:
        return False


@atexit.register
def _remove_kept() -> None:
    if _owner[0] == os.getpid():
        for root in _free:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["PREFIX", "scratch"]
