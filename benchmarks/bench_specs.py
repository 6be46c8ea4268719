"""Spec-runner speed (issue 5): datum planning at scale, watcher reaction, the edges example.

(a) Planning 100,000 tiny input files in 25,000 groups of four (``/(*)/(*)_s(*)_w(*).tif``):
    a cold plan (every file hashed) and a no-op replan (stat cache: nothing re-hashed), each a
    whole process, with its peak RSS. Goal: no-op replan < 10 s and < 1 GiB.
    ``DATABACKED_BENCH_SPEC_FILES`` sets the number of files (default 100000).
(b) The watcher's reaction to a new file in a local repo: ``databacked.watch.watch`` in a
    thread, a file dropped, seconds until its output appears (median of 5). Goal: < 2 s.
(c) Seed 004's edges example (numpy edges of small PNGs, then a montage per set) with
    ``databacked spec run``, cold and no-op, against a bare Python loop (make-style mtime
    checks; goals <= 2x cold, <= 3x no-op), and a Snakefile doing the same in the same run
    when ``snakemake`` is installed.

    python benchmarks/bench_specs.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
FILES = int(os.environ.get("DATABACKED_BENCH_SPEC_FILES", "100000"))
PLATES = 10
CHANNELS = 4
EDGE_IMAGES = 120
EDGE_SETS = 2
EDGE_RUNS = 5
"""Repetitions of each edges case, databacked and the bare loop taking turns (Snakemake: one)."""
SPEC_RUN_IMPORTS = ("databacked.cli.app", "databacked.cli.specs", "databacked.specs.runner")
"""The modules a no-op ``databacked spec run`` has imported by the time it starts working."""
REACTIONS = 5
REPLANS = 3

# --- shared -------------------------------------------------------------------------------


def _time_process(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Wall seconds (spawn to reap), peak RSS in MiB, exit code and stdout of a command."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.monotonic() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
            print(f"  ! exit {code}: {' '.join(cmd)}\n    " + "\n    ".join(tail))
    return wall, usage.ru_maxrss / 1024.0, code, out.decode(errors="replace")


def _row(case: str, seconds: float, **extra: object) -> dict:
    return {"section": "Specs", "case": case, "seconds": seconds, **extra}


# --- (a) planning at scale ----------------------------------------------------------------

PLAN_STEPS = """
def measure_site(files, output_dir):
    pass
"""

PLAN_SPEC = """
pipeline: measure
input:
  group:
    - repo: raw
      glob: "/(*)/(*)_s(*)_w(*).tif"
      names: [plate, well, site, channel]
      group_by: "$1/$2_s$3"
transform:
  python: plan_steps:measure_site
"""

# Runs in a child process so its wall time and peak RSS are the planner's alone. The store
# counts the files it hashes, so "nothing re-hashed" is measured, not assumed.
PLAN_DRIVER = """
import json, sys, time
from databacked.catalog import Catalog
from databacked.specs.runner import plan_specs
from databacked.store import Store

class CountingStore(Store):
    hashed = 0
    def hash(self, relpath):
        CountingStore.hashed += 1
        return super().hash(relpath)

t0 = time.monotonic()
catalog = Catalog.open(sys.argv[2])
plan = plan_specs(sys.argv[1], store=CountingStore(sys.argv[3]), catalog=catalog)
catalog.close()
print(json.dumps({"seconds": time.monotonic() - t0, "hashed": CountingStore.hashed,
                  "datums": len(plan.rows)}))
"""


def _make_plan_project(root: Path, files: int) -> None:
    """``files`` 16-byte images, four channels per site, sites spread over plates and wells."""
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "measure.yml").write_text(PLAN_SPEC)
    (root / "plan_steps.py").write_text(PLAN_STEPS)
    (root / "plan_driver.py").write_text(PLAN_DRIVER)
    groups = max(1, files // CHANNELS)
    for g in range(groups):
        plate, rest = divmod(g, max(1, groups // PLATES))
        well, site = divmod(rest, 10)
        folder = root / "data" / "raw" / f"plate{plate:02d}"
        if site == 0 and well == 0:
            folder.mkdir(parents=True, exist_ok=True)
        for channel in range(1, CHANNELS + 1):
            name = f"W{well:04d}_s{site}_w{channel}.tif"
            (folder / name).write_bytes(g.to_bytes(12, "little") + channel.to_bytes(4, "little"))
    # The planner does not stat-cache files younger than 2 s (coarse mtime clocks).
    time.sleep(2.1)


def bench_planning(work: Path) -> list[dict]:
    root = work / "plan"
    t0 = time.monotonic()
    _make_plan_project(root, FILES)
    made = time.monotonic() - t0
    cmd = [PY, "plan_driver.py", "pipelines", f"sqlite:///{root / 'catalog.db'}", "data"]
    rows = []
    for case, runs in (("cold plan", 1), ("no-op replan", REPLANS)):
        walls, peaks, notes, met = [], [], [], True
        for _ in range(runs):
            wall, peak, code, out = _time_process(cmd, root)
            found = json.loads(out.strip().splitlines()[-1]) if code == 0 else {}
            hashed = found.get("hashed", -1)
            walls.append(wall)
            peaks.append(peak)
            notes.append(f"{found.get('seconds', float('nan')):.2f}")
            met = met and code == 0 and hashed == (FILES if case == "cold plan" else 0)
        wall, peak = statistics.median(walls), max(peaks)
        note = (
            f"{FILES:,} files, {found.get('datums', 0):,} datums; {hashed:,} files hashed; "
            f"planning itself {', '.join(notes)} s (the rest is interpreter and imports); "
            f"median of {runs}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
            f"generating the files took {made:.1f} s"
        )
        if case == "cold plan":
            rows.append(
                _row(
                    f"plan {FILES:,} files: {case}",
                    wall,
                    peak_mib=peak,
                    note=note,
                    goal="every file hashed once",
                    goal_met=met,
                )
            )
        else:
            met = met and wall < 10.0 and peak < 1024.0
            rows.append(
                _row(
                    f"plan {FILES:,} files: {case}",
                    wall,
                    peak_mib=peak,
                    note=note,
                    goal="< 10 s, < 1024 MiB, 0 re-hashed",
                    goal_met=met,
                )
            )
    shutil.rmtree(root / "data", ignore_errors=True)
    return rows


# --- (b) watcher reaction -----------------------------------------------------------------

WATCH_STEPS = """
def copy_upper(files, output_dir):
    for name, path in files.items():
        (output_dir / (path.name + ".out")).write_text(path.read_text().upper())
"""

WATCH_SPEC = """
pipeline: shout
input:
  pfs:
    repo: inbox
    glob: "/*"
transform:
  python: watch_steps:copy_upper
"""


def bench_watch(work: Path) -> list[dict]:
    from databacked.watch import watch

    root = work / "watch"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "shout.yml").write_text(WATCH_SPEC)
    (root / "watch_steps.py").write_text(WATCH_STEPS)
    inbox = root / "data" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "first.txt").write_text("first")
    out = root / "data" / "shout"
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            watch(
                root / "pipelines",
                store=str(root / "data"),
                catalog=f"sqlite:///{root / 'catalog.db'}",
                stop_event=stop,
            )
        except BaseException as exc:  # reported in the row, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    reactions: list[float] = []
    try:
        if not _wait_for(out / "first.txt.out", 60.0, errors):  # the catch-up run
            raise RuntimeError("the watcher's first run produced nothing")
        for i in range(REACTIONS):
            time.sleep(1.0)  # a quiet watcher, as between real arrivals
            t0 = time.monotonic()
            (inbox / f"new{i}.txt").write_text(f"new {i}")
            if not _wait_for(out / f"new{i}.txt.out", 30.0, errors):
                raise RuntimeError(f"no output for new{i}.txt within 30 s")
            reactions.append(time.monotonic() - t0)
    except (RuntimeError, OSError) as exc:
        errors.append(exc)
    finally:
        stop.set()
        thread.join(30.0)
    if not reactions:
        why = f"{type(errors[0]).__name__}: {errors[0]}" if errors else "no reaction measured"
        return [
            _row(
                "watcher reacts to a new local file",
                float("nan"),
                goal="< 2 s",
                goal_met=False,
                note=why,
            )
        ]
    median = statistics.median(reactions)
    spread = ", ".join(f"{r:.2f}" for r in reactions)
    return [
        _row(
            "watcher reacts to a new local file",
            median,
            goal="< 2 s",
            goal_met=median < 2.0,
            note=f"median of {len(reactions)} ({spread} s); watchdog, debounce 0.5 s, inline",
        )
    ]


def _wait_for(path: Path, limit: float, errors: list[BaseException]) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not errors:
        if path.exists():
            return True
        time.sleep(0.01)
    return path.exists()


# --- (c) seed 004's edges example ---------------------------------------------------------

# The work itself, shared by the databacked transforms, the bare loop and the Snakefile.
EDGES_LIB = '''
import imageio.v3 as iio
import numpy as np


def edges(image):
    """Gradient magnitude (Sobel), scaled to 8 bits: what the OpenCV example computes."""
    g = np.pad(image.astype(np.float32), 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    mag = np.hypot(gx, gy)
    return (255 * mag / max(float(mag.max()), 1e-9)).astype(np.uint8)


def montage(images, columns=8):
    rows = -(-len(images) // columns)
    h, w = images[0].shape
    sheet = np.zeros((rows * h, columns * w), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return sheet


def edges_file(src, dst):
    iio.imwrite(dst, edges(iio.imread(src)))


def montage_files(srcs, dst):
    iio.imwrite(dst, montage([iio.imread(s) for s in sorted(srcs)]))
'''

EDGES_STEPS = """
import edges_lib


def edges(files, output_dir):
    for name, path in files.items():
        edges_lib.edges_file(path, output_dir / path.name)


def montage(files, output_dir, set):
    edges_lib.montage_files(list(files.values()), output_dir / f"{set}_montage.png")
"""

EDGES_SPECS = """
pipeline: edges
description: Image edge detection (seed 004, Pachyderm's opencv example, in numpy).
input:
  pfs:
    repo: images
    glob: "/*"
transform:
  python: edges_steps:edges
---
pipeline: montage
input:
  group:
    - repo: edges
      glob: "/(*)_(*).png"
      names: [set, index]
      group_by: "$1"
transform:
  python: edges_steps:montage
"""

# The baseline: the same work with make's rule (skip when the output is newer than inputs).
BARE_LOOP = """
import sys
from pathlib import Path
import edges_lib

data = Path(sys.argv[1])
(data / "edges").mkdir(exist_ok=True)
(data / "montage").mkdir(exist_ok=True)
def stale(out, ins):
    return not out.exists() or any(i.stat().st_mtime_ns > out.stat().st_mtime_ns for i in ins)
sets = {}
for src in sorted((data / "images").iterdir()):
    dst = data / "edges" / src.name
    if stale(dst, [src]):
        edges_lib.edges_file(src, dst)
    sets.setdefault(src.name.split("_")[0], []).append(dst)
for name, members in sets.items():
    dst = data / "montage" / f"{name}_montage.png"
    if stale(dst, members):
        edges_lib.montage_files(members, dst)
"""

SNAKEFILE = """
import edges_lib
IMAGES, = glob_wildcards("{data}/images/{{name}}.png")
SETS = sorted({{n.split("_")[0] for n in IMAGES}})

rule all:
    input: expand("{data}/montage/{{s}}_montage.png", s=SETS)

rule edges:
    input: "{data}/images/{{name}}.png"
    output: "{data}/edges/{{name}}.png"
    run: edges_lib.edges_file(input[0], output[0])

rule montage:
    input: lambda w: [f"{data}/edges/{{n}}.png" for n in IMAGES if n.startswith(w.s + "_")]
    output: "{data}/montage/{{s}}_montage.png"
    run: edges_lib.montage_files(list(input), output[0])
"""


def _make_edges_project(root: Path) -> None:
    import imageio.v3 as iio
    import numpy as np

    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "edges.yml").write_text(EDGES_SPECS)
    (root / "edges_lib.py").write_text(textwrap.dedent(EDGES_LIB))
    (root / "edges_steps.py").write_text(EDGES_STEPS)
    (root / "bare_loop.py").write_text(BARE_LOOP)
    rng = np.random.default_rng(4)
    for sub in ("data/images", "bare/images", "snake/images"):
        (root / sub).mkdir(parents=True)
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(EDGE_IMAGES):
        cy, cx, r = rng.integers(20, 76), rng.integers(20, 76), rng.integers(8, 20)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * 180
        image = (disc + rng.integers(0, 40, disc.shape)).astype(np.uint8)
        name = f"set{i % EDGE_SETS}_{i:04d}.png"
        for sub in ("data", "bare", "snake"):
            iio.imwrite(root / sub / "images" / name, image)


def _snakemake() -> list[str] | None:
    exe = shutil.which("snakemake")
    if exe:
        return [exe]
    probe = subprocess.run([PY, "-c", "import snakemake"], capture_output=True, check=False)
    return [PY, "-m", "snakemake"] if probe.returncode == 0 else None


def _same_outputs(a: Path, b: Path) -> bool:
    import imageio.v3 as iio
    import numpy as np

    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.png"))
    other = sorted(p.relative_to(b).as_posix() for p in b.rglob("*.png"))
    return names == other and all(
        np.array_equal(iio.imread(a / n), iio.imread(b / n)) for n in names
    )


def bench_edges(work: Path) -> list[dict]:
    root = work / "edges"
    _make_edges_project(root)
    ours = [
        PY,
        "-c",
        "from databacked.cli import main; main()",  # the `databacked` command, this venv
        "spec",
        "run",
        "pipelines",
        "--store",
        "data",
        "--catalog",
        f"sqlite:///{root / 'catalog.db'}",
    ]
    bare_cmd = [PY, "bare_loop.py", "bare"]
    snake = _snakemake()
    snake_cmd = None
    if snake is not None:
        (root / "Snakefile").write_text(SNAKEFILE.format(data="snake"))
        snake_cmd = [*snake, "--cores", str(os.cpu_count() or 1), "--quiet"]
    goals = {"cold": 2.0, "no-op": 3.0}  # issue 8: against the bare loop, same run

    def cold_start() -> None:
        for made in ("edges", "montage", ".databacked"):
            shutil.rmtree(root / "data" / made, ignore_errors=True)
            shutil.rmtree(root / "bare" / made, ignore_errors=True)
        for db_file in root.glob("catalog.db*"):
            db_file.unlink()

    # What `databacked spec run` imports before any work (typer, rich, SQLAlchemy, pydantic,
    # PyYAML, databacked), ended as the command ends: the floor under the no-op ratio.
    imports_alone = [PY, "-c", f"import {', '.join(SPEC_RUN_IMPORTS)}; import os; os._exit(0)"]
    rows = []
    for case in ("cold", "no-op"):
        # databacked and the bare loop take turns, EDGE_RUNS times: medians of each
        walls, base_walls, peaks, codes, floors = [], [], [], [], []
        for _ in range(EDGE_RUNS):
            if case == "cold":
                cold_start()
            wall, peak, code, _out = _time_process(ours, root)
            base_wall, _base_peak, base_code, _ = _time_process(bare_cmd, root)
            if case == "no-op":
                floors.append(_time_process(imports_alone, root)[0])
            walls.append(wall)
            base_walls.append(base_wall)
            peaks.append(peak)
            codes += [code, base_code]
        wall, base_wall, peak = statistics.median(walls), statistics.median(base_walls), max(peaks)
        floor_row = None
        if floors:
            floor = statistics.median(floors)
            floor_row = _row(
                "edges example (seed 004): no-op, its imports alone",
                floor,
                baseline="bare Python loop, mtime checks",
                baseline_seconds=base_wall,
                ratio=floor / base_wall,
                note="a process importing what `spec run` imports before any work "
                "(typer, rich, SQLAlchemy, pydantic, PyYAML, databacked), then ending as "
                f"the command does; the floor under the no-op ratio; median of {EDGE_RUNS}, "
                "taking turns with the runs above",
            )
        same = not any(codes) and _same_outputs(root / "data", root / "bare")
        note = (
            f"{EDGE_IMAGES} PNGs 96x96 -> edges -> {EDGE_SETS} montages; `databacked spec run` "
            "(default executor) as a whole process, databacked byte-compiled as installed; "
            f"medians of {EDGE_RUNS}, taking turns with the bare loop "
            f"({min(walls):.2f}-{max(walls):.2f} s against {min(base_walls):.2f}-"
            f"{max(base_walls):.2f} s); load average {os.getloadavg()[0]:.1f}"
        )
        snake_wall = None
        if snake_cmd is not None:
            snake_wall, snake_peak, snake_code, _ = _time_process(snake_cmd, root)
            snake_same = snake_code == 0 and _same_outputs(root / "data", root / "snake")
            rows.append(
                _row(
                    f"edges example (seed 004): {case}, snakemake",
                    snake_wall,
                    peak_mib=snake_peak,
                    baseline="bare Python loop, mtime checks",
                    baseline_seconds=base_wall,
                    ratio=snake_wall / base_wall,
                    note="the same Snakefile workflow, same run"
                    + ("" if snake_same else "; FAILED or different images"),
                )
            )
            note += f"; {wall / snake_wall:.2f}x snakemake"
        else:
            note += "; snakemake is not installed here (pip install snakemake)"
        at = len(rows) - (1 if snake_wall is not None else 0)
        if floor_row is not None:
            rows.insert(at, floor_row)
        rows.insert(
            at,
            _row(
                f"edges example (seed 004): {case}",
                wall,
                peak_mib=peak,
                baseline="bare Python loop, mtime checks",
                baseline_seconds=base_wall,
                ratio=wall / base_wall,
                goal=f"<= {goals[case]:g}x bare, same images",
                goal_met=same and wall / base_wall <= goals[case],
                note=note,
            ),
        )
    return rows


# --- entry --------------------------------------------------------------------------------


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="databacked-bench-specs-") as tmp:
        work = Path(tmp)
        for part in (bench_planning, bench_watch, bench_edges):
            print(f"  {part.__name__} ...", flush=True)
            rows += part(work)
    return rows


if __name__ == "__main__":
    for found in run():
        print(json.dumps(found))
