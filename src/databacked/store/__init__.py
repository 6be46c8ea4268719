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

On object stores, ``directory_writer`` (Zarr) writes under the final prefix directly: a failed
write is cleaned up, but readers may see a partial folder while it runs.
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
from databacked.store.writers import DirectoryWriter, HashingWriter, SeekableWriter

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
    "is_transient",
    "retrying",
]
