"""A worker keeps its datum scratch folder between datums: each datum still sees a path of its
own, an empty output folder and only its own input files, whatever the datum before it left."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from databacked.specs import scratch as scratch_module
from databacked.specs.scratch import scratch
from databacked.specs.transform import DatumTask, run_datum
from databacked.store import Store


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_each_datum_gets_a_new_path_an_empty_out_and_only_its_input_folders() -> None:
    with scratch(["a/b/one.txt", "c/two.txt"]) as first:
        (first / "in" / "a" / "b").mkdir(parents=True)  # as lay_out does
        (first / "in" / "c").mkdir()
        (first / "in" / "a" / "b" / "one.txt").write_text("1")
        (first / "in" / "c" / "two.txt").write_text("2")
        (first / "out" / "deep" / "er").mkdir(parents=True)
        (first / "out" / "deep" / "er" / "x.txt").write_text("x")
        (first / "out" / "top.txt").write_text("t")
        (first / "in" / "c" / "made_by_the_transform").mkdir()
        (first / "stray.txt").write_text("s")
        os.symlink("/etc", first / "out" / "link")
    with scratch(["a/three.txt"]) as second:
        assert second != first and not first.exists()  # the same folder, renamed
        assert _tree(second) == ["in", "in/a", "out"]
    with scratch([]) as third:
        assert third not in (first, second)
        assert _tree(third) == ["in", "out"]


def test_a_transform_that_removed_its_folders_leaves_the_next_datum_whole_ones() -> None:
    with scratch(["x.txt"]) as first:
        scratch_module.shutil.rmtree(first / "out")
        scratch_module.shutil.rmtree(first / "in")
    with scratch(["y/z.txt"]) as second:
        assert _tree(second) == ["in", "out"]


def _lists_its_inputs(files: dict[str, Path], input_dir: Path, output_dir: Path) -> None:
    seen = sorted(p.relative_to(input_dir).as_posix() for p in input_dir.rglob("*"))
    (output_dir / f"{next(iter(files)).replace('/', '_')}.txt").write_text("\n".join(seen))
    (output_dir / "junk").mkdir()  # an empty folder is no output, and must not stay
    Path(str(input_dir).rsplit("/", 1)[0], "marker").write_text(str(input_dir))


def test_datums_in_a_row_see_exactly_their_own_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.put_bytes("raw/p1/a.txt", b"a")
    store.put_bytes("raw/p2/q/b.txt", b"b")
    tasks: list[Any] = [
        DatumTask("k1", "ls", "d1", (("raw/p1/a.txt", "raw/p1/a.txt"),), {},
                  function=_lists_its_inputs),
        DatumTask("k2", "ls", "d2", (("raw/p2/q/b.txt", "raw/p2/q/b.txt"),), {},
                  function=_lists_its_inputs),
    ]  # fmt: skip
    outcomes = [run_datum(task, store) for task in tasks]

    assert [o.status for o in outcomes] == ["ok", "ok"], outcomes[0].traceback
    assert store.read_bytes("ls/raw_p1_a.txt.txt") == b"raw\nraw/p1\nraw/p1/a.txt"
    assert store.read_bytes("ls/raw_p2_q_b.txt.txt") == b"raw\nraw/p2\nraw/p2/q\nraw/p2/q/b.txt"
    assert set(outcomes[1].records) == {"raw_p2_q_b.txt.txt"}  # not the first datum's output
