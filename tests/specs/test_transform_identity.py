"""A ``python:`` transform whose source files are unchanged is not imported on a no-op run.

Its fingerprint is kept in the catalog with the stamps of the files that decide it; a run
whose datums are all cached then never imports the transform's packages. Editing any of
those files, or a constant computed at import, still re-runs its datums.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from databacked import hashing
from databacked.catalog import Catalog
from databacked.engine import keys
from databacked.engine.keys import fingerprint_and_sources

HOUR_AGO = time.time() - 3600

STEPS = """
import json
from pathlib import Path

import helper

SCALE = 3
CONFIG = json.loads((Path(__file__).parent / "config.json").read_text())


def triple(files, output_dir):
    for name, path in files.items():
        (output_dir / path.name).write_text(helper.render(path.read_text(), SCALE))


def configured(files, output_dir):
    for name, path in files.items():
        (output_dir / path.name).write_text(path.read_text() * CONFIG["times"])
"""

# Appends a line each time a process imports it: what a heavy package costs, made visible.
HELPER = """
import os

with open(os.environ["IMPORTS_FILE"], "a") as f:
    f.write("imported\\n")


def render(text, scale):
    return text * scale
"""

SPECS = """
pipeline: {name}
input:
  pfs:
    repo: raw
    glob: "/*"
transform:
  python: steps:{function}
"""


def _project(tmp_path: Path, function: str) -> Path:
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "p.yml").write_text(SPECS.format(name=function, function=function))
    (root / "steps.py").write_text(STEPS)
    (root / "helper.py").write_text(HELPER)
    (root / "config.json").write_text('{"times": 2}')
    for name in ("a.txt", "b.txt"):
        (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
        (root / "data" / "raw" / name).write_text(name[0])
    _age(root)
    return root


def _age(root: Path) -> None:
    # Files written this very second are not trusted by their stamp (racy stat): age them.
    for path in root.glob("*.*"):
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def _run(root: Path, executor: str = "inline") -> dict[str, int]:
    """``databacked spec run`` in a new process: its datums per status (its printed table)."""
    done = subprocess.run(
        [sys.executable, "-c", "from databacked.cli import main; main()", "spec", "run",
         "pipelines", "--store", "data", "--catalog", "sqlite:///catalog.db",
         "--executor", executor],
        cwd=root, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "IMPORTS_FILE": str(root / "imports.log")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    row = next(line for line in lines if line.startswith("│"))
    statuses = [cell.strip() for cell in header.strip("┃").split("┃")][1:]
    counts = [int(cell) for cell in row.strip("│").split("│")[1:]]
    return dict(zip(statuses, counts, strict=True))


def _imports(root: Path) -> int:
    log = root / "imports.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_an_unchanged_transform_is_not_imported_and_an_edited_helper_reruns(tmp_path):
    root = _project(tmp_path, "triple")

    assert _run(root) == {"ran": 2}
    assert _imports(root) == 1
    assert _run(root) == {"cached": 2}
    assert _imports(root) == 1  # the no-op rerun did not import the transform

    helper = root / "helper.py"
    helper.write_text(helper.read_text().replace("text * scale", "text * scale + '!'"))
    _age(root)  # edited, and still older than the racy-stat window: only the stamp tells
    os.utime(helper, (HOUR_AGO + 60, HOUR_AGO + 60))

    assert _run(root) == {"ran": 2}
    assert (root / "data" / "triple" / "a.txt").read_text() == "aaa!"
    assert _run(root) == {"cached": 2}
    assert _imports(root) == 2


def test_new_data_with_a_kept_fingerprint_imports_the_transform_to_run_it(tmp_path):
    root = _project(tmp_path, "triple")
    assert _run(root) == {"ran": 2}
    assert _run(root) == {"cached": 2}
    (root / "data" / "raw" / "c.txt").write_text("c")
    _age(root / "data" / "raw")

    assert _run(root, executor="processes") == {"cached": 2, "ran": 1}
    assert (root / "data" / "triple" / "c.txt").read_text() == "ccc"
    (root / "data" / "raw" / "d.txt").write_text("d")
    before = _imports(root)
    assert _run(root) == {"cached": 3, "ran": 1}
    assert _imports(root) == before + 1  # imported once, to run the new datum


def test_the_kept_fingerprint_also_depends_on_how_databacked_hashes_code(tmp_path):
    root = _project(tmp_path, "triple")
    _run(root)

    catalog = Catalog.open(f"sqlite:///{root / 'catalog.db'}")
    try:
        [(sources,)] = catalog.engine.connect().execute(
            sa.text("SELECT sources FROM code_fingerprints")
        )
    finally:
        catalog.close()

    files = [path for path, _stamp in json.loads(sources)]
    assert files == sorted(
        str(Path(p).resolve())
        for p in (root / "steps.py", root / "helper.py", keys.__file__, hashing.__file__)
    )


def test_a_constant_computed_at_import_keeps_the_transform_imported(tmp_path):
    root = _project(tmp_path, "configured")

    assert _run(root) == {"ran": 2}
    assert _run(root) == {"cached": 2}
    assert _imports(root) == 2  # CONFIG comes from config.json: only importing tells

    (root / "config.json").write_text('{"times": 4}')

    assert _run(root) == {"ran": 2}
    assert (root / "data" / "configured" / "a.txt").read_text() == "aaaa"


def test_a_file_written_just_now_is_not_trusted_by_its_stamp(tmp_path):
    root = _project(tmp_path, "triple")
    (root / "steps.py").write_text((root / "steps.py").read_text())  # mtime: now

    assert _run(root) == {"ran": 2}
    assert _run(root) == {"cached": 2}
    assert _imports(root) == 2


# -- which source files decide a fingerprint ------------------------------------------------

LITERAL = 0.5
COMPUTED = float("0.5")


def _uses_literal(x):
    return x * LITERAL


def _uses_computed(x):
    return x * COMPUTED


def _uses_installed_constant(text):
    return text.strip(string.whitespace)


def _closure():
    scale = 2

    def inner(x):
        return x * scale

    return inner


def test_sources_of_a_fingerprint_are_its_files_unless_a_value_is_set_at_run_time():
    here = str(Path(__file__).resolve())

    _, literal = fingerprint_and_sources(_uses_literal, "f", None)
    _, computed = fingerprint_and_sources(_uses_computed, "f", None)
    _, installed = fingerprint_and_sources(_uses_installed_constant, "f", None)
    _, closure = fingerprint_and_sources(_closure(), "f", None)
    named, versioned = fingerprint_and_sources(_uses_computed, "f", "2")

    assert literal == [here]
    assert computed is None
    assert installed == sorted([here, str(Path(string.__file__).resolve())])
    assert closure is None
    assert (named, versioned) == ("f@2", [])


def test_a_source_mentioning_a_name_twice_is_not_taken_for_a_literal(tmp_path, monkeypatch):
    module = tmp_path / "twice.py"
    module.write_text(
        textwrap.dedent("""
        LIMIT = 1
        LIMIT = 2

        def f(x):
            return x + LIMIT
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import twice

    _, sources = fingerprint_and_sources(twice.f, "f", None)

    assert sources is None
