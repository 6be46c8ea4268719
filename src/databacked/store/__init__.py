"""Where artifact bytes live: a local folder or any fsspec URL, with atomic hashed writes.

A ``Store`` is rooted at a folder (``./data``) or an object-store prefix
(``s3://bucket/prefix``); every path given to it is relative to that root and checked
(``check_path``). Writes are atomic -- locally a ``.databacked-tmp-*`` file renamed into
place, on S3 one PUT or one completed multipart upload -- and hash their bytes while they
stream out. Transient errors are retried with exponential back-off; everything else becomes
a ``StoreError`` naming the store and the path.

Example::

    store = Store("./data")
    with store.writer("tables/a.csv") as out:
        out.write(b"x,y\\n1,2\\n")
    out.result.hash   # blake3 of exactly those bytes

Folders (Zarr, ``directory_writer``) are staged and swapped in: locally with one atomic
exchange, on object stores with a marker that makes a half-copied folder count as missing
until it is rewritten or repaired (``store/folders.py``).
"""

from databacked.store.base import (
    STAGING_PREFIX,
    Durability,
    FileInfo,
    WriteResult,
    combined_etag,
    is_transient,
    retrying,
)
from databacked.store.core import Store
from databacked.store.folders import DirectoryWriter, interrupted, repair_folder
from databacked.store.writers import HashingWriter, SeekableWriter

__all__ = [
    "STAGING_PREFIX",
    "DirectoryWriter",
    "Durability",
    "FileInfo",
    "HashingWriter",
    "SeekableWriter",
    "Store",
    "WriteResult",
    "combined_etag",
    "interrupted",
    "is_transient",
    "repair_folder",
    "retrying",
]
