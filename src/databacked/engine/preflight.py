"""Checks before the first call computes: a store that cannot take our writes fails now.

Without them every call of a run computes, then every upload fails, and the message is
"retry". One tiny write and delete per run (only when something is about to run, so a no-op
rerun stays at ``stat`` calls) and, for object stores, a look for credentials first: each
failure is one sentence saying what to set.
"""

from __future__ import annotations

import uuid
from typing import Any

from databacked.errors import DatabackedError, StoreError

PROBE = ".databacked/preflight"
"""Folder of the probe file (under the store's own bookkeeping, never input to a spec)."""


def check_store(store: Any) -> None:
    """Raise StoreError (one sentence) unless ``store`` accepts a write and a delete."""
    if store.protocol in ("s3", "s3a"):
        check_s3_credentials(store)
    path = f"{PROBE}/{uuid.uuid4().hex}"
    try:
        store.put_bytes(path, b"")
        store.delete(path)
    except (DatabackedError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"The store {store.url} does not accept writes ({first}); nothing was computed. "
            f"{_hint(store)}"
        ) from exc


def check_s3_credentials(store: Any) -> None:
    """S3 keys come from storage options or botocore's usual chain; say so when neither has
    any (a public bucket is read with ``anon = true``, but we must write)."""
    options = dict(getattr(store, "storage_options", None) or {})
    if options.get("anon") or options.get("key") or options.get("token"):
        return
    try:
        import botocore.session
    except ImportError:
        return  # s3fs not installed: the store says which extra to install
    if botocore.session.get_session().get_credentials() is None:
        raise StoreError(
            f"No S3 credentials for the store {store.url}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or key and secret in [storage_options] "
            "of databacked.toml; nothing was computed."
        )


def _hint(store: Any) -> str:
    if store.protocol in ("s3", "s3a"):
        return (
            "Check that the bucket exists and that your AWS_* credentials (or storage_options) "
            "may write to it, and AWS_ENDPOINT_URL for a non-AWS endpoint."
        )
    if store.is_local:
        return "Check the folder's permissions and free space, or choose another --store."
    return "Check the store URL and its credentials."


__all__ = ["check_s3_credentials", "check_store"]
