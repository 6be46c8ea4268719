"""One datum's transform: files laid out as in their repos, Python and command transforms,
outputs uploaded into the pipeline's repo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from databacked.specs.transform import DatumTask, fill, run_datum
from databacked.store import Store


def _store(root: Path) -> Store:
    store = Store(root)
    store.put_bytes("raw/plate1/A01_s1_w1.txt", b"dna\n")
    store.put_bytes("raw/plate1/A01_s1_w2.txt", b"membrane\n")
    return store


FILES = (
    ("raw/plate1/A01_s1_w1.txt", "raw/plate1/A01_s1_w1.txt"),
    ("raw/plate1/A01_s1_w2.txt", "raw/plate1/A01_s1_w2.txt"),
)
VALUES = {"plate": "plate1", "well": "A01", "group": "plate1/A01_s1", "1": "plate1"}


def _seen(files: dict[str, Path], output_dir: Path, plate: str, datum: str) -> None:
    listing = {name: path.read_text() for name, path in files.items()}
    out = output_dir / plate / f"{datum}.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(listing, sort_keys=True))


def test_python_transform_sees_laid_out_files_and_its_outputs_land_in_the_repo(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "data")
    task = DatumTask("k1", "measure", "d1", FILES, VALUES, function=_seen)

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.traceback
    assert list(outcome.records) == ["plate1/d1.json"]
    record = outcome.records["plate1/d1.json"]
    assert record.path == "measure/plate1/d1.json"
    assert record.format == "json"
    assert record.hash == store.hash("measure/plate1/d1.json")
    assert json.loads(store.read_bytes(record.path)) == {
        "raw/plate1/A01_s1_w1.txt": "dna\n",
        "raw/plate1/A01_s1_w2.txt": "membrane\n",
    }


def _returns(files: dict[str, Path], well: str) -> dict[str, Any]:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    return {"{plate}/{well}.tiff": image, "{plate}/{well}_n.json": {"n": len(files), "w": well}}


def test_returned_values_are_written_with_the_format_of_their_extension(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    task = DatumTask("k2", "measure", "d2", FILES, VALUES, function=_returns)

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.traceback
    assert sorted(outcome.records) == ["plate1/A01.tiff", "plate1/A01_n.json"]
    image = tifffile.imread(store.local_path("measure/plate1/A01.tiff"))
    np.testing.assert_array_equal(image, np.arange(12, dtype=np.uint16).reshape(3, 4))
    assert json.loads(store.read_bytes("measure/plate1/A01_n.json")) == {"n": 2, "w": "A01"}


def _plain(files: dict[str, Path]) -> int:
    return len(files)


def test_a_plain_return_value_needs_a_target(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    task = DatumTask("k3", "count", "d3", FILES, VALUES, function=_plain)

    failed = run_datum(task, store)
    targeted = run_datum(
        DatumTask("k3", "count", "d3", FILES, VALUES, function=_plain, output_target="{1}.json"),
        store,
    )

    assert failed.status == "failed"
    assert "output.target" in failed.error_message
    assert targeted.status == "ok", targeted.traceback
    assert json.loads(store.read_bytes("count/plate1.json")) == 2


def test_cmd_gets_placeholders_and_environment(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    script = (
        "cat {input_dir}/raw/plate1/*.txt > {output_dir}/{plate}_{1}.txt; "
        'echo "$DATABACKED_DATUM $DATABACKED_PLATE $DATABACKED_GROUP" '
        '> "$DATABACKED_OUTPUT_DIR/env.txt"'
    )
    task = DatumTask("k4", "cat", "d4", FILES, VALUES, cmd=("sh", "-c", script))

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.error_message
    assert store.read_bytes("cat/plate1_plate1.txt") == b"dna\nmembrane\n"
    assert store.read_bytes("cat/env.txt") == b"d4 plate1 plate1/A01_s1\n"


def test_cmd_failure_carries_the_stderr_tail_and_writes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    script = "echo partial > {output_dir}/half.txt; echo 'no cells found in A01' >&2; exit 3"
    task = DatumTask("k5", "cat", "d5", FILES, VALUES, cmd=("sh", "-c", script))

    outcome = run_datum(task, store)

    assert outcome.status == "failed"
    assert "exited with code 3" in outcome.error_message
    assert "no cells found in A01" in outcome.error_message
    assert "no cells found in A01" in outcome.stderr
    assert not store.exists("cat/half.txt")


def test_cmd_accepted_return_code_and_missing_program(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    accepted = DatumTask(
        "k6", "cat", "d6", FILES, VALUES, cmd=(sys.executable, "-c", "exit(1)"),
        accept_return_code=(1,),
    )  # fmt: skip
    missing = DatumTask("k7", "cat", "d7", FILES, VALUES, cmd=("no-such-program-databacked",))

    assert run_datum(accepted, store).status == "ok"
    outcome = run_datum(missing, store)
    assert outcome.status == "failed"
    assert "cannot start command 'no-such-program-databacked'" in outcome.error_message


def test_files_come_from_an_object_store(s3_bucket: str, tmp_path: Path) -> None:
    store = Store(f"{s3_bucket}/project")
    store.put_bytes("raw/plate1/A01_s1_w1.txt", b"dna\n")
    store.put_bytes("raw/plate1/A01_s1_w2.txt", b"membrane\n")
    task = DatumTask("k8", "measure", "d8", FILES, VALUES, function=_seen)

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.traceback
    assert json.loads(store.read_bytes("measure/plate1/d8.json"))["raw/plate1/A01_s1_w2.txt"] == (
        "membrane\n"
    )
    assert outcome.records["plate1/d8.json"].stamp.startswith("e:")


def test_fill_leaves_unknown_braces_alone() -> None:
    assert fill("{a}-{b}-${c}-{1}", {"a": "x", "1": "one"}) == "x-{b}-${c}-one"


def test_an_input_that_vanished_before_the_run_fails_its_datum_clearly(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    store.delete("raw/plate1/A01_s1_w2.txt")
    task = DatumTask("k9", "measure", "d9", FILES, VALUES, function=_seen)

    outcome = run_datum(task, store)

    assert outcome.status == "failed"
    assert outcome.error_type == "InputVanished"
    assert "raw/plate1/A01_s1_w2.txt disappeared" in outcome.error_message
    assert not store.exists("measure/plate1/d9.json")


def _chatty(files: dict[str, Path]) -> dict[str, Any]:
    print(f"measured {len(files)} files")
    return {"{datum}.dat": {"files": sorted(files)}}


def test_python_output_is_captured_and_output_format_names_the_format(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    task = DatumTask(
        "k10", "chat", "d10", FILES, VALUES, function=_chatty, output_format={"name": "json"}
    )

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.traceback
    assert outcome.stdout == "measured 2 files\n"
    assert outcome.records["d10.dat"].format == "json"
    assert json.loads(store.read_bytes("chat/d10.dat"))["files"][0] == "raw/plate1/A01_s1_w1.txt"


def test_cmd_stdin_lines_pachyderm_style(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    stdin = ("cd {input_dir}/raw/{1}", "cat *_w2.txt > $DATABACKED_OUTPUT_DIR/{well}.txt")
    task = DatumTask("k11", "pach", "d11", FILES, VALUES, cmd=("sh",), stdin=stdin)

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.error_message
    assert store.read_bytes("pach/A01.txt") == b"membrane\n"


# --- file names are data, never shell code ---------------------------------------------------

HOSTILE = [
    "a$(touch pwned1)b",
    "`touch pwned2`",
    "x;touch pwned3;y",
    "p|touch pwned4",
    'it\'s "quoted"',
    "with space",
    "two\nlines",
    "$HOME&&touch pwned5",
]


def _hostile_task(tmp_path: Path, name: str, index: int, **kw: Any) -> tuple[Store, DatumTask]:
    store = Store(tmp_path / "data")
    store.put_bytes(f"raw/{name}/x.txt", f"content {index}\n".encode())
    files = ((f"raw/{name}/x.txt", f"raw/{name}/x.txt"),)
    values = {"well": name, "1": name}
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return store, DatumTask(f"k{index}", "evil", f"d{index}", files, values, cwd=str(cwd), **kw)


def test_stdin_lines_quote_values_from_file_names(tmp_path: Path) -> None:
    stdin = ("cat {input_dir}/raw/{1}/x.txt > $DATABACKED_OUTPUT_DIR/{well}.out",)
    for index, name in enumerate(HOSTILE):
        store, task = _hostile_task(tmp_path, name, index, cmd=("sh",), stdin=stdin)
        outcome = run_datum(task, store)
        assert outcome.status == "ok", (name, outcome.error_message)
        assert store.read_bytes(f"evil/{name}.out") == f"content {index}\n".encode()
    assert list((tmp_path / "cwd").iterdir()) == []  # no pwned* file: nothing ran


def test_cmd_arguments_stay_one_argv_element_each(tmp_path: Path) -> None:
    cmd = ("cp", "{input_dir}/raw/{1}/x.txt", "{output_dir}/{well}.copy")
    for index, name in enumerate(HOSTILE):
        store, task = _hostile_task(tmp_path, name, index, cmd=cmd)
        outcome = run_datum(task, store)
        assert outcome.status == "ok", (name, outcome.error_message)
        assert store.read_bytes(f"evil/{name}.copy") == f"content {index}\n".encode()
    assert list((tmp_path / "cwd").iterdir()) == []


def test_capture_values_reach_the_command_as_environment_variables(tmp_path: Path) -> None:
    script = (
        'cp "$DATABACKED_INPUT_DIR/raw/$DATABACKED_1/x.txt" '
        '"$DATABACKED_OUTPUT_DIR/$DATABACKED_WELL.env"'
    )
    for index, name in enumerate(HOSTILE):
        store, task = _hostile_task(tmp_path, name, index, cmd=("sh", "-c", script))
        outcome = run_datum(task, store)
        assert outcome.status == "ok", (name, outcome.error_message)
        assert store.read_bytes(f"evil/{name}.env") == f"content {index}\n".encode()
    assert list((tmp_path / "cwd").iterdir()) == []


def test_a_symlink_out_of_the_output_folder_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    secret = tmp_path / "secret.txt"
    secret.write_text("the worker's key\n")
    script = f"ln -s {secret} {{output_dir}}/leak.txt; echo fine > {{output_dir}}/ok.txt"
    task = DatumTask("k12", "links", "d12", FILES, VALUES, cmd=("sh", "-c", script))

    outcome = run_datum(task, store)

    assert outcome.status == "failed"
    assert outcome.error_type == "SpecError"
    assert "leak.txt" in outcome.error_message and "outside" in outcome.error_message
    assert not store.exists("links/leak.txt")
    assert not store.exists("links/ok.txt")


def test_a_symlink_inside_the_output_folder_uploads_its_bytes(tmp_path: Path) -> None:
    store = _store(tmp_path / "data")
    script = "echo fine > {output_dir}/ok.txt; ln -s ok.txt {output_dir}/alias.txt"
    task = DatumTask("k13", "links", "d13", FILES, VALUES, cmd=("sh", "-c", script))

    outcome = run_datum(task, store)

    assert outcome.status == "ok", outcome.error_message
    assert store.read_bytes("links/alias.txt") == b"fine\n"
