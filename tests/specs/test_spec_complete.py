"""Declared completeness of group datums: by member count and by manifest."""

from __future__ import annotations

from pathlib import Path

from databacked.specs import is_complete, load_text, match_datums
from databacked.store import Store


def plate_spec(complete: str) -> object:
    return load_text(
        "pipeline: plate_report\ninput:\n  group:\n"
        "    - repo: measure\n      glob: /(?P<plate>*)/*.csv\n      group_by: $1\n"
        f"      complete: {complete}\n"
        "transform: {python: m:f}\n"
    )[0]


def sites(store: Store, plate: str, wells: list[str]) -> None:
    for well in wells:
        store.put_bytes(f"measure/{plate}/{well}.csv", f"{plate},{well}".encode())


def test_complete_by_count(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sites(store, "p1", ["A01", "A02", "A03"])
    sites(store, "p2", ["A01"])
    spec = plate_spec("{count: 3}")
    p1, p2 = match_datums(spec, store)
    assert is_complete(p1, spec, store) == (True, "3 of 3 expected files of 'measure'")
    ok, reason = is_complete(p2, spec, store)
    assert not ok
    assert reason == "1 of 3 expected files of 'measure' are present"
    # The group input itself or its member can be asked too.
    assert is_complete(p2, spec.input, store)[0] is False
    assert is_complete(p1, spec.input.group[0].pfs, store)[0] is True


def test_complete_by_manifest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sites(store, "p1", ["A01", "A02"])
    spec = plate_spec("{manifest: {repo: plans, path: '{plate}.txt'}}")
    (p1,) = match_datums(spec, store)
    assert is_complete(p1, spec, store) == (False, "manifest plans/p1.txt does not exist yet")

    store.put_bytes(
        "plans/p1.txt", b"# wells of plate 1\np1/A01.csv\n/p1/A02.csv\nmeasure/p1/B01.csv\n"
    )
    ok, reason = is_complete(p1, spec, store)
    assert not ok
    assert (
        reason == "1 of 3 members listed in manifest plans/p1.txt are missing (measure/p1/B01.csv)"
    )

    sites(store, "p1", ["B01"])
    (p1,) = match_datums(spec, store)
    assert is_complete(p1, spec, store) == (
        True,
        "all 3 members listed in manifest plans/p1.txt are present",
    )


def test_csv_manifest_uses_its_path_column(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sites(store, "p1", ["A01"])
    spec = plate_spec("{manifest: {repo: plans, path: '{group}.csv'}}")
    store.put_bytes("plans/p1.csv", b"well,path\nA01,p1/A01.csv\nA02,p1/A02.csv\n")
    (p1,) = match_datums(spec, store)
    ok, reason = is_complete(p1, spec, store)
    assert not ok
    assert "(p1/A02.csv)" in reason


def test_without_declaration_a_group_is_complete(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sites(store, "p1", ["A01"])
    spec = load_text(
        "pipeline: r\ninput: {group: [{repo: measure, glob: '/(*)/*.csv', group_by: $1}]}\n"
        "transform: {python: m:f}\n"
    )[0]
    (p1,) = match_datums(spec, store)
    assert is_complete(p1, spec, store) == (True, "no completeness declared")
