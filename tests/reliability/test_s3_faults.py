"""S3 (moto's server) behind a fault proxy on loopback: 500s, SlowDown, connection resets
and truncated bodies are retried; no target ever holds a partial object and no multipart
upload is left dangling."""

from __future__ import annotations

import os
import uuid

import boto3
import numpy as np
import pytest
from faultproxy import fault_proxy
from reliability_report import Campaign

import databacked as db
from databacked.hashing import hash_bytes
from databacked.store import STAGING_PREFIX, Store


def _bucket(endpoint: str) -> str:
    name = f"dbk-fault-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


def run_scenario(
    endpoint: str, campaign: Campaign, *, seed: int, files: int, folders: int, big: bool
) -> None:
    bucket = _bucket(endpoint)
    files_ok: dict[str, bytes] = {}
    folders_ok: dict[str, np.ndarray] = {}
    failed = 0
    rng = np.random.default_rng(seed)
    with fault_proxy(endpoint, rate=0.2, seed=seed) as (url, proxy):
        store = Store(f"s3://{bucket}/p", storage_options={"endpoint_url": url})
        store.exists("warm-up")  # connect before the faults start
        proxy.armed = True
        sizes = [int(rng.integers(1, 200_000)) for _ in range(files)]
        if big:
            sizes.append(40 * 2**20)  # spilled to disk, then a multipart upload
        for i, size in enumerate(sizes):
            data = rng.bytes(size)
            try:
                result = store.put_bytes(f"f/{i}.bin", data)
            except db.StoreError:
                failed += 1
                continue
            assert result.hash == hash_bytes(data) and result.size == size
            files_ok[f"f/{i}.bin"] = data
        for i in range(folders):
            value = rng.integers(0, 60000, (2, 32, 32), dtype=np.uint16)
            try:
                db.OmeZarr(dims="CYX", chunks=(1, 16, 16)).write(value, store, f"z/{i}.ome.zarr")
            except db.StoreError:
                failed += 1
                continue
            folders_ok[f"z/{i}.ome.zarr"] = value
        for path, data in files_ok.items():  # reads through the faults too
            assert store.read_bytes(path) == data
        proxy.armed = False
        injected = dict(proxy.injected)
    # a clean client straight to moto checks what really landed
    s3 = boto3.client("s3", endpoint_url=endpoint)
    keys = {
        o["Key"]: o["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    bad = 0
    for path, data in files_ok.items():
        body = s3.get_object(Bucket=bucket, Key=f"p/{path}")["Body"].read()
        bad += body != data
    clean = Store(f"s3://{bucket}/p", storage_options={"endpoint_url": endpoint})
    for path, value in folders_ok.items():
        got = db.load(clean.uri(path), storage_options={"endpoint_url": endpoint})
        bad += not np.array_equal(got, value)
    targets = {k for k in keys if STAGING_PREFIX not in k and ".databacked-writing-" not in k}
    expected = {f"p/{p}" for p in files_ok} | {
        k for k in keys if any(k.startswith(f"p/{f}/") for f in folders_ok)
    }
    partial = targets - expected
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    leftovers = len([k for k in keys if STAGING_PREFIX in k])
    campaign.add(
        "S3 behind a fault proxy",
        runs=len(files_ok) + len(folders_ok) + failed,
        faults=sum(injected.values()),
        lost_or_corrupt=bad + len(partial) + len(uploads),
        note=f"writes given up after retries: {failed}; staging leftovers for gc: {leftovers}",
    )
    assert sum(injected.values()) > 0, "the proxy injected nothing"
    assert not partial, f"objects at targets from failed writes: {sorted(partial)}"
    assert not uploads, f"dangling multipart uploads: {uploads}"
    assert bad == 0


def test_s3_fault_proxy_fast(s3_endpoint: str, campaign: Campaign) -> None:
    run_scenario(s3_endpoint, campaign, seed=1, files=6, folders=1, big=False)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", range(2, 6))
def test_s3_fault_proxy_soak(s3_endpoint: str, campaign: Campaign, seed: int) -> None:
    run_scenario(s3_endpoint, campaign, seed=seed, files=40, folders=6, big=seed % 2 == 0)


def test_proxy_env_is_clean() -> None:
    assert "DATABACKED_FAULT" not in os.environ
