"""Leases: two drivers never hold one key; expired leases are taken over."""

from __future__ import annotations

import multiprocessing
import threading
from typing import TYPE_CHECKING

import pytest

from databacked.catalog import Catalog

if TYPE_CHECKING:
    from conftest import Names


def test_acquire_renew_release(catalog: Catalog, names: Names) -> None:
    keys = [names.key(i) for i in range(10)]
    assert catalog.acquire(keys[:6], "a", 60, host="h1", pid=11) == set(keys[:6])
    assert catalog.acquire(keys, "b", 60) == set(keys[6:])
    others = catalog.leases_of_others(keys, "b")
    assert set(others) == set(keys[:6])
    lease = others[keys[0]]
    assert (lease.owner, lease.host, lease.pid) == ("a", "h1", 11)
    assert lease.expires > lease.heartbeat
    # Acquiring again keeps what the owner already holds.
    assert catalog.acquire(keys[:3], "a", 60) == set(keys[:3])
    catalog.release(keys[:2], "a")
    assert catalog.acquire(keys, "b", 60) == set(keys[:2]) | set(keys[6:])
    catalog.release(None, "a")
    assert catalog.leases_of_others(keys, "b") == {}
    assert set(catalog.leases_of_others(keys)) == set(keys[:2]) | set(keys[6:])
    catalog.release(None, "b")
    assert catalog.leases_of_others(keys) == {}


def test_expired_leases_are_taken_over(catalog: Catalog, names: Names) -> None:
    keys = [names.key(i) for i in range(5)]
    # A driver that died: its leases are already past their expiry.
    assert catalog.acquire(keys, "dead", -1) == set(keys)
    assert catalog.leases_of_others(keys, "alive") == {}
    assert catalog.acquire(keys, "alive", 60) == set(keys)
    assert set(catalog.leases_of_others(keys, "dead")) == set(keys)


def test_renew_keeps_leases_alive(catalog: Catalog, names: Names) -> None:
    keys = [names.key(i) for i in range(3)]
    assert catalog.acquire(keys, "slow", -1) == set(keys)
    catalog.renew("slow", 60)
    assert catalog.acquire(keys, "other", 60) == set()
    assert {lease.owner for lease in catalog.leases_of_others(keys).values()} == {"slow"}


def _race(url: str, keys: list[str], owner: str, barrier) -> set[str]:
    cat = Catalog.open(url)
    try:
        barrier.wait()
        won = cat.acquire(keys, owner, 60)
        # A second wave against the other's leases must win nothing new.
        won |= cat.acquire(keys, owner, 60)
        return won
    finally:
        cat.close()


def test_two_threads_racing_never_share_a_key(catalog_url: str, names: Names) -> None:
    Catalog.open(catalog_url).close()
    keys = [names.key(i) for i in range(600)]
    barrier = threading.Barrier(2)
    results: dict[str, set[str]] = {}

    def work(owner: str) -> None:
        results[owner] = _race(catalog_url, keys, owner, barrier)

    threads = [threading.Thread(target=work, args=(owner,)) for owner in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results["t1"].isdisjoint(results["t2"])
    assert results["t1"] | results["t2"] == set(keys)


def _race_process(url: str, keys: list[str], owner: str, barrier, queue) -> None:
    queue.put((owner, sorted(_race(url, keys, owner, barrier))))


@pytest.mark.parametrize("rounds", [2])
def test_two_processes_racing_never_share_a_key(
    catalog_url: str, names: Names, rounds: int
) -> None:
    Catalog.open(catalog_url).close()
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(rounds):
        keys = [names.key(f"{round_}/{i}") for i in range(400)]
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_race_process, args=(catalog_url, keys, owner, barrier, queue))
            for owner in ("p1", "p2")
        ]
        for proc in procs:
            proc.start()
        results = dict(queue.get(timeout=120) for _ in procs)
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0, 0]
        won1, won2 = set(results["p1"]), set(results["p2"])
        assert won1.isdisjoint(won2)
        assert won1 | won2 == set(keys)
