"""Datums against hand-checked sets: globs, captures, group, join, cross, union, keys."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from databacked.errors import SpecError
from databacked.specs import Datum, datum_key, load_text, match_datums
from databacked.specs.datums import match_input
from databacked.specs.model import Input, Spec
from databacked.store import FileInfo, Store


def make_store(root: Path | str, files: Mapping[str, bytes | str]) -> Store:
    store = Store(root)
    for path, data in files.items():
        store.put_bytes(path, data.encode() if isinstance(data, str) else data)
    return store


def spec_of(input_yaml: str, extra: str = "") -> Spec:
    return load_text(f"pipeline: p\ninput:\n{input_yaml}\ntransform: {{python: m:f}}\n{extra}")[0]


def pfs(repo: str, glob: str, **more: object) -> Input:
    return Input.model_validate({"pfs": {"repo": repo, "glob": glob, **more}})


def layout(datums: Sequence[Datum]) -> list[list[str]]:
    return [[f.path for f in d.files] for d in datums]


TREE = {
    "raw/a.txt": "a",
    "raw/b/c.txt": "c",
    "raw/b/d/e.txt": "e",
    "raw/f/g.txt": "g",
    "raw/h.csv": "h",
}


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("/", [["a.txt", "b/c.txt", "b/d/e.txt", "f/g.txt", "h.csv"]]),
        ("/*", [["a.txt"], ["b/c.txt", "b/d/e.txt"], ["f/g.txt"], ["h.csv"]]),
        ("/*/*", [["b/c.txt"], ["b/d/e.txt"], ["f/g.txt"]]),
        ("/*.txt", [["a.txt"]]),
        ("/**/*.txt", [["a.txt"], ["b/c.txt"], ["b/d/e.txt"], ["f/g.txt"]]),
        ("/b/**", [["b/c.txt"], ["b/d/e.txt"]]),
        ("/{a,h}.*", [["a.txt"], ["h.csv"]]),
        ("/[!ab]*", [["f/g.txt"], ["h.csv"]]),
        ("/?.txt", [["a.txt"]]),
    ],
)
def test_glob_semantics(tmp_path: Path, glob: str, expected: list[list[str]]) -> None:
    store = make_store(tmp_path, TREE)
    datums = match_input(pfs("raw", glob), store)
    assert layout(datums) == expected
    assert all(f.repo == "raw" for d in datums for f in d.files)


def site_files(plates: int = 1, wells: Sequence[str] = ("A01", "B02")) -> dict[str, str]:
    """Seed 002's layout: plate/well_site_channel.tif."""
    return {
        f"raw/plate{p}/{w}_s{s}_w{c}.tif": f"{p}{w}{s}{c}"
        for p in range(1, plates + 1)
        for w in wells
        for s in (1, 2)
        for c in (1, 2, 3)
    }


GROUP_BY_SITE = """\
  group:
    - repo: raw
      glob: "/(*)/(*)_s(*)_w(*).tif"
      names: [plate, well, site, channel]
      group_by: "$1/$2_s$3"
"""


def test_group_by_site_holds_all_channels(tmp_path: Path) -> None:
    store = make_store(tmp_path, {**site_files(), "raw/plate1/notes.md": "x"})
    datums = match_datums(spec_of(GROUP_BY_SITE), store)
    assert [d.group for d in datums] == [
        "plate1/A01_s1",
        "plate1/A01_s2",
        "plate1/B02_s1",
        "plate1/B02_s2",
    ]
    first = datums[0]
    assert [f.path for f in first.files] == [f"plate1/A01_s1_w{c}.tif" for c in (1, 2, 3)]
    # Channel differs between members, so only what the whole site shares is an attribute.
    assert first.attributes == {"plate": "plate1", "well": "A01", "site": "1"}


def test_named_captures_become_attributes(tmp_path: Path) -> None:
    store = make_store(tmp_path, site_files(wells=("A01",)))
    datums = match_input(pfs("raw", "/(?P<plate>*)/(?P<well>*)_s(*)_w1.tif"), store)
    assert [d.attributes for d in datums] == [
        {"plate": "plate1", "well": "A01"},
        {"plate": "plate1", "well": "A01"},
    ]
    assert layout(datums) == [["plate1/A01_s1_w1.tif"], ["plate1/A01_s2_w1.tif"]]


def test_group_on_a_memory_store() -> None:
    store = make_store(f"memory://specs-{uuid.uuid4().hex}", site_files(wells=("A01",)))
    datums = match_datums(spec_of(GROUP_BY_SITE), store)
    assert [len(d.files) for d in datums] == [3, 3]
    assert datums[0].files[0].stamp  # object-store listings carry a stamp too


JOIN_FILES = {
    "left/a.csv": "la",
    "left/b.csv": "lb",
    "left/c.csv": "lc",
    "right/b.tif": "rb",
    "right/c.tif": "rc",
    "right/d.tif": "rd",
}


@pytest.mark.parametrize(
    ("outer_left", "outer_right", "expected"),
    [
        (False, False, [["b.csv", "b.tif"], ["c.csv", "c.tif"]]),
        (True, False, [["a.csv"], ["b.csv", "b.tif"], ["c.csv", "c.tif"]]),
        (True, True, [["a.csv"], ["b.csv", "b.tif"], ["c.csv", "c.tif"], ["d.tif"]]),
    ],
)
def test_join_inner_and_outer(
    tmp_path: Path, outer_left: bool, outer_right: bool, expected: list[list[str]]
) -> None:
    store = make_store(tmp_path, JOIN_FILES)
    spec = spec_of(
        f"""\
  join:
    - {{pfs: {{repo: left, glob: "/(*).csv", join_on: "$1", outer_join: {outer_left}}}}}
    - {{pfs: {{repo: right, glob: "/(*).tif", join_on: "$1", outer_join: {outer_right}}}}}
"""
    )
    datums = match_datums(spec, store)
    assert layout(datums) == expected
    paired = [d for d in datums if len(d.files) == 2]
    assert [d.group for d in paired] == ["b", "c"]
    assert all([f.repo for f in d.files] == ["left", "right"] for d in paired)


def test_cross_union_and_nesting(tmp_path: Path) -> None:
    store = make_store(tmp_path, {**JOIN_FILES, "models/m1.pt": "1", "models/m2.pt": "2"})
    cross = match_input(
        Input.model_validate({"cross": [{"repo": "left", "glob": "/*"}, pfs("models", "/*")]}),
        store,
    )
    assert len(cross) == 6
    assert all(sorted(f.repo for f in d.files) == ["left", "models"] for d in cross)
    union = match_input(
        Input.model_validate({"union": [pfs("left", "/*"), pfs("right", "/*")]}), store
    )
    assert sorted(p for row in layout(union) for p in row) == sorted(
        p.split("/", 1)[1] for p in JOIN_FILES
    )
    nested = match_input(
        Input.model_validate(
            {
                "cross": [
                    {"group": [{"repo": "left", "glob": "/(*).csv", "group_by": "all"}]},
                    {"union": [pfs("models", "/m1.pt"), pfs("right", "/d.tif")]},
                ]
            }
        ),
        store,
    )
    assert layout(nested) == [  # sorted by layout path: left/..., models/... < right/...
        ["a.csv", "b.csv", "c.csv", "m1.pt"],
        ["a.csv", "b.csv", "c.csv", "d.tif"],
    ]


def test_datum_ids_are_stable_and_independent_of_other_data(tmp_path: Path) -> None:
    files = site_files()
    one = match_datums(spec_of(GROUP_BY_SITE), make_store(tmp_path / "one", files))
    more = {**files, "raw/plate1/C03_s1_w1.tif": "new"}
    two = match_datums(spec_of(GROUP_BY_SITE), make_store(tmp_path / "two", more))
    assert {d.id for d in one} < {d.id for d in two}
    assert len({d.id for d in two}) == len(two) == 5
    assert all(len(d.id) == 16 for d in one)


def test_keys_follow_paths_and_content(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"raw/x.tif": "same", "raw/y.tif": "same", "raw/z.tif": "z"})
    x, y, z = match_input(pfs("raw", "/*"), store)
    again = match_input(pfs("raw", "/*"), store)[0]
    assert datum_key("fp", x) == datum_key("fp", again)
    assert datum_key("fp", x) != datum_key("fp2", x)  # the transform is part of the key
    # key_by path: a renamed identical file is another datum; key_by content shares it.
    assert datum_key("fp", x) != datum_key("fp", y)
    assert datum_key("fp", x, "content") == datum_key("fp", y, "content")
    assert datum_key("fp", x, "content") != datum_key("fp", z, "content")
    store.put_bytes("raw/x.tif", b"changed")
    changed = match_input(pfs("raw", "/*"), store)[0]
    assert changed.id == x.id
    assert datum_key("fp", changed) != datum_key("fp", x)
    with pytest.raises(SpecError, match="key_by"):
        datum_key("fp", x, "name")


def test_hashes_come_from_the_callable_for_matched_files_only(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"raw/a.tif": "a", "raw/b.tif": "b", "raw/skip.txt": "s"})
    asked: list[list[str]] = []

    def cached(infos: Sequence[FileInfo]) -> dict[str, str]:
        asked.append([i.path for i in infos])
        return {i.path: f"h-{i.path}" for i in infos}

    datums = match_input(pfs("raw", "/*.tif"), store, hashes=cached)
    assert asked == [["raw/a.tif", "raw/b.tif"]]
    assert [f.hash for d in datums for f in d.files] == ["h-raw/a.tif", "h-raw/b.tif"]
    # The default hashes by content, the hash the keys use.
    plain = match_input(pfs("raw", "/a.tif"), store)[0]
    assert plain.files[0].hash == store.hash("raw/a.tif")


def test_a_file_vanishing_while_planning_skips_only_its_datums(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(tmp_path, site_files(wells=("A01",)))
    spec = spec_of(GROUP_BY_SITE)

    def hash_then_vanish(infos: Sequence[FileInfo]) -> dict[str, str]:
        # Another process deletes one image after the listing, before it is hashed.
        store.delete("raw/plate1/A01_s2_w3.tif")
        return {i.path: store.hash(i.path) for i in infos if store.exists(i.path)}

    with caplog.at_level(logging.WARNING, logger="databacked"):
        datums = match_datums(spec, store, hashes=hash_then_vanish)
    [record] = caplog.records
    assert record.name == "databacked.specs.datums"
    assert re.search("1 input file.* disappeared .*A01_s2_w3.tif", record.getMessage())
    assert [d.group for d in datums] == ["plate1/A01_s1"]
    # The default hashing skips vanished files the same way; the next listing regroups.
    assert [len(d.files) for d in match_datums(spec, store)] == [3, 2]


def test_writes_in_progress_are_not_input(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"raw/a.tif": "a"})
    (tmp_path / "raw" / ".databacked-tmp-123-b.tif").write_bytes(b"partial")
    assert layout(match_input(pfs("raw", "/*"), store)) == [["a.tif"]]


def test_a_glob_matching_nothing_is_a_logged_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(tmp_path, {"raw/a.tif": "a"})
    with caplog.at_level(logging.WARNING, logger="databacked"):
        assert match_datums(spec_of("  pfs: {repo: raw, glob: /*.png}"), store) == []
        assert match_input(pfs("absent", "/*"), store) == []
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("glob '/*.png' matched nothing in repo 'raw'")
    assert "repo 'absent'" in second


def test_a_capture_referenced_but_not_captured_is_a_spec_error(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"raw/a.tif": "a"})
    inp = Input.model_validate({"group": [{"repo": "raw", "glob": "/(*).tif", "group_by": "$2"}]})
    with pytest.raises(SpecError, match=r"refers to \$2 but glob '/\(\*\)\.tif' captures 1"):
        match_input(inp, store)
    named = Input.model_validate(
        {"join": [{"repo": "raw", "glob": "/(*).tif", "join_on": "${well}"}]}
    )
    with pytest.raises(SpecError, match="no capture named 'well'"):
        match_input(named, store)


def test_group_and_keys_on_s3(s3_bucket: str, tmp_path: Path) -> None:
    """Object-store listings (ETag stamps) give the same datums and keys as a local folder."""
    files = site_files(wells=("A01",))
    remote = match_datums(spec_of(GROUP_BY_SITE), make_store(f"{s3_bucket}/project", files))
    local = match_datums(spec_of(GROUP_BY_SITE), make_store(tmp_path, files))
    assert [d.group for d in remote] == ["plate1/A01_s1", "plate1/A01_s2"]
    assert all(f.stamp.startswith("e:") for d in remote for f in d.files)
    assert [d.id for d in remote] == [d.id for d in local]
    assert [datum_key("fp", d) for d in remote] == [datum_key("fp", d) for d in local]
