"""Local listings (``Store.list``/``Store.infos``) as the spec planner relies on them."""

from __future__ import annotations

import os
from pathlib import Path

from databacked.store import Store


def _tree(root: Path) -> None:
    for rel in ("raw/p1/A01_s1_w1.tif", "raw/p1/A01_s1_w2.tif", "raw/p2/deep/x.tif", "top.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())


def test_list_gives_posix_paths_relative_to_the_root_with_sizes_and_stamps(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    store = Store(tmp_path / "data")
    infos = {i.path: i for i in store.list()}
    assert sorted(infos) == [
        "raw/p1/A01_s1_w1.tif",
        "raw/p1/A01_s1_w2.tif",
        "raw/p2/deep/x.tif",
        "top.txt",
    ]
    st = os.stat(tmp_path / "data/raw/p2/deep/x.tif")
    info = infos["raw/p2/deep/x.tif"]
    assert (info.size, info.mtime_ns, info.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert info == store.info("raw/p2/deep/x.tif")
    assert sorted(i.path for i in store.list("raw/p1")) == [
        "raw/p1/A01_s1_w1.tif",
        "raw/p1/A01_s1_w2.tif",
    ]


def test_list_of_a_missing_or_file_prefix_is_empty(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    store = Store(tmp_path / "data")
    assert list(store.list("nothing/here")) == []
    assert list(store.list("top.txt")) == []


def test_list_follows_linked_files_but_not_linked_folders_and_skips_dangling_links(
    tmp_path: Path,
) -> None:
    _tree(tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.tif").write_bytes(b"0123456789")
    root = tmp_path / "data"
    (root / "raw/linked.tif").symlink_to(outside / "big.tif")
    (root / "raw/linked_dir").symlink_to(outside, target_is_directory=True)
    (root / "raw/dangling.tif").symlink_to(tmp_path / "gone.tif")
    infos = {i.path: i for i in Store(root).list("raw")}
    assert "raw/linked.tif" in infos
    assert infos["raw/linked.tif"].size == 10  # the target's size, as os.stat gives
    assert not any(p.startswith("raw/linked_dir") for p in infos)
    assert "raw/dangling.tif" not in infos


def test_store_at_the_filesystem_root_lists_relative_paths(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    rel = str(tmp_path / "data" / "raw" / "p1").lstrip("/")
    listed = sorted(i.path for i in Store("/").list(rel))
    assert listed == [f"{rel}/A01_s1_w1.tif", f"{rel}/A01_s1_w2.tif"]


def test_infos_stats_many_paths_and_gives_none_for_missing_ones(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    store = Store(tmp_path / "data")
    found = store.infos(["raw/p1/A01_s1_w1.tif", "raw/p1/nope.tif", "top.txt/below"])
    assert found["raw/p1/nope.tif"] is None
    assert found["top.txt/below"] is None
    assert found["raw/p1/A01_s1_w1.tif"] == store.info("raw/p1/A01_s1_w1.tif")
