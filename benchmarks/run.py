"""`make bench`: databacked's figures against baselines measured in the same run.

    python benchmarks/run.py                      # every section, figures to benchmarks/RESULTS.md
    python benchmarks/run.py --only pipeline      # one section (import, hashing, formats,
                                                  # catalog, pipeline, scale, executors,
                                                  # specs, ui, writes)
    PEERS=dask-processes,snakemake-threads python benchmarks/run.py --only pipeline

Absolute times on a shared 2-core machine are noise; every figure here is a ratio against a
baseline timed in the same run (a bare loop, the raw library, a plain SQL insert). Pipelines
are timed as whole processes (start-up included) with the peers' workload from
``../shared/peers`` (set ``PEERS_DIR`` to move it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", HERE.parent.parent / "shared" / "peers")).resolve()
PY = sys.executable

# Goals from the issues, as (ratio or absolute) limits: case -> (text, check)
GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "images cold": ("<= 0.8x bare", lambda r: r <= 0.8),
    "images noop": ("<= 4x bare", lambda r: r <= 4.0),  # issue 8
    "images new1": ("<= 2x bare", lambda r: r <= 2.0),
    "overhead cold": ("<= 4x bare", lambda r: r <= 4.0),  # issue 8
    "overhead noop": ("<= 4x bare", lambda r: r <= 4.0),  # issue 8
}


@dataclass
class Timing:
    """Whole-process figures of one command over several runs."""

    walls: list[float] = field(default_factory=list)
    peaks_mib: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def span(self) -> str:
        return f"{min(self.walls):.2f}-{max(self.walls):.2f}"

    @property
    def peak(self) -> float:
        return max(self.peaks_mib)

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.codes)


def time_process(
    cmd: Sequence[str], *, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Wall seconds (spawn to reap), peak RSS of the child in MiB, and exit code."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError):  # anything left running in its group
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        print(f"  ! exit {proc.returncode}: {' '.join(cmd)}\n    " + "\n    ".join(tail))
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def repeat(
    cmd: Sequence[str], runs: int, before: Callable[[], None] | None = None, **kw: object
) -> Timing:
    timing = Timing()
    for _ in range(runs):
        if before is not None:
            before()
        wall, peak, code = time_process(cmd, **kw)  # type: ignore[arg-type]
        timing.walls.append(wall)
        timing.peaks_mib.append(peak)
        timing.codes.append(code)
    return timing


# ---------------------------------------------------------------- sections
def section_import(runs: int) -> list[dict]:
    """`import databacked` as a whole process, against a bare interpreter."""
    bare = repeat([PY, "-c", "pass"], runs * 2)
    ours = repeat([PY, "-c", "import databacked"], runs * 2)
    overhead = ours.median - bare.median
    return [
        {
            "section": "Import",
            "case": "python -c 'import databacked'",
            "seconds": ours.median,
            "baseline": "python -c 'pass'",
            "baseline_seconds": bare.median,
            "ratio": ours.median / bare.median,
            "note": f"import itself {overhead * 1000:.0f} ms (goal: process < 150 ms)",
            "goal_met": ours.median < 0.150,
        }
    ]


def section_module(name: str) -> list[dict]:
    """A benchmark module in this folder exposing run() -> list[dict], in its own process.

    Its own process, so the gigabyte arrays of one section neither slow the next nor count in
    the peak memory of the pipelines timed later (a child inherits its parent's ru_maxrss).
    """
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import {name}; "
        f"print('@@' + json.dumps({name}.run(), default=str))"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        tail = "\n    ".join(done.stderr.strip().splitlines()[-5:])
        print(f"  ! {name} failed (exit {done.returncode}):\n    {tail}")
        return []
    return list(json.loads(lines[-1][2:]))


def _snapshot(folder: Path, subdirs: Sequence[str]) -> dict[str, int]:
    stamps: dict[str, int] = {}
    for sub in subdirs:
        for path in (folder / sub).glob("*"):
            stamps[str(path)] = path.stat().st_mtime_ns
    return stamps


def _rewritten(before: dict[str, int], folder: Path, subdirs: Sequence[str]) -> int:
    after = _snapshot(folder, subdirs)
    return sum(1 for path, stamp in after.items() if before.get(path) != stamp)


def _csv_rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return -1


def _runners(data: Path, out: Path, peers: Sequence[str]) -> dict[str, list[str]]:
    runners = {
        "bare": [PY, str(PEERS_DIR / "run_bare.py"), "--data", str(data), "--out", str(out)],
        "bare-hash": [
            PY, str(PEERS_DIR / "run_bare.py"), "--cache", "hash",
            "--data", str(data), "--out", str(out),
        ],
        "databacked": [
            PY, str(HERE / "run_databacked.py"), "--data", str(data), "--out", str(out),
        ],
    }  # fmt: skip
    peer_cmds = {
        "dask-processes": [PY, str(PEERS_DIR / "run_dask.py"), "--scheduler", "processes"],
        "dask-distributed": [PY, str(PEERS_DIR / "run_dask.py"), "--scheduler", "distributed"],
        "redun": [PY, str(PEERS_DIR / "run_redun.py")],
        "prefect": [PY, str(PEERS_DIR / "run_prefect.py")],
    }
    for peer in peers:
        if peer == "snakemake-threads":
            runners[peer] = [
                "snakemake", "-s", str(PEERS_DIR / "Snakefile"), "--cores", "2",
                "--force-use-threads", "--directory", str(out), "--config", f"data={data}",
            ]  # fmt: skip
        elif peer in peer_cmds:
            runners[peer] = [*peer_cmds[peer], "--data", str(data), "--out", str(out)]
        else:
            print(f"  ! unknown peer {peer!r}; known: snakemake-threads, {', '.join(peer_cmds)}")
    return runners


IMPORTS_ALONE = "databacked's imports alone"
NOOP_IMPORTS = (
    "argparse", "common", "databacked", "databacked.engine.api", "databacked.engine.scheduler",
    "databacked.engine.provenance", "databacked.catalog.catalog", "sqlalchemy.dialects.sqlite",
)  # fmt: skip
"""What ``run_databacked.py`` has imported when a no-op run starts working."""
FLOOR_NOTE = "no work: the imports of a no-op run, the floor under its ratio"


def section_pipeline(n: int, runs: int, peers: Sequence[str], work: Path) -> list[dict]:
    """The peers' imaging workload and 1,000 trivial calls, whole processes, vs the bare loop.

    Every runner has its own output folder and the runners take turns within each repetition
    (bare, databacked, bare, ...), so a slower minute of this shared machine falls on both
    sides of a ratio; the short cases (no-op, one new field) get at least five repetitions.
    """
    if not (PEERS_DIR / "common.py").exists():
        print(f"  ! the peers' workload is not at {PEERS_DIR}; set PEERS_DIR")
        return []
    env = {**os.environ, "PEERS_DIR": str(PEERS_DIR)}
    data, data_plus = work / "data", work / "data_plus"
    for folder, count in ((data, n), (data_plus, n + 1)):
        subprocess.run(
            [PY, str(PEERS_DIR / "gen_data.py"), "--n", str(count), "--data", str(folder)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    outputs = ("norm", "png", "meas")
    short = max(runs, 5)
    figures: dict[tuple[str, str], Timing] = {}
    checks: dict[tuple[str, str], str] = {}
    names = list(_runners(data, work, peers))
    out = {name: work / f"out-{name}" for name in names}
    snap = {name: work / f"snap-{name}" for name in names}
    cmds = {name: _runners(data, out[name], peers)[name] for name in names}
    plus = {name: [str(data_plus) if a == str(data) else a for a in cmds[name]] for name in names}

    def reset(name: str) -> None:
        shutil.rmtree(out[name], ignore_errors=True)

    def restore(name: str) -> None:
        reset(name)
        shutil.copytree(snap[name], out[name], symlinks=True)

    def turns(
        case: str,
        count: int,
        cmd: dict[str, list[str]],
        before: Callable[[str], None] | None = None,
    ) -> None:
        for _ in range(count):
            for name, command in cmd.items():
                if before is not None:
                    before(name)
                timing = figures.setdefault((name, case), Timing())
                wall, peak, code = time_process(command, env=env)
                timing.walls.append(wall)
                timing.peaks_mib.append(peak)
                timing.codes.append(code)

    print(f"  {', '.join(names)}: images cold / noop / new1 at N={n}, taking turns")
    turns("images cold", runs, cmds, reset)
    stamps: dict[str, dict[str, int]] = {}
    for name in names:  # the state after a cold run of N images starts noop and new1
        reset(name)
        time_process(cmds[name], env=env)
        shutil.rmtree(snap[name], ignore_errors=True)
        shutil.copytree(out[name], snap[name], symlinks=True)
        stamps[name] = _snapshot(out[name], outputs)
    # The floor under a no-op's ratio: a process that only imports what a no-op `db.run` of
    # this script imports (the workload's numpy and tifffile, databacked's engine, SQLAlchemy)
    # and ends as the script does.
    floor = [PY, "-c", f"import sys; sys.path.insert(0, {str(PEERS_DIR)!r}); " + "; ".join(
        f"import {m}" for m in NOOP_IMPORTS)]  # fmt: skip
    turns("images noop", short, {**cmds, IMPORTS_ALONE: floor})
    for name in names:
        changed = _rewritten(stamps[name], out[name], outputs)
        checks[name, "images noop"] = f"{changed} rewritten, {_csv_rows(_final(out[name]))} rows"
    turns("images new1", short, plus, restore)
    for name in names:
        changed = _rewritten(stamps[name], out[name], outputs)
        checks[name, "images new1"] = f"{changed} rewritten, {_csv_rows(_final(out[name]))} rows"

    overhead = {
        "bare": [PY, str(PEERS_DIR / "run_bare.py"), "--workload", "overhead", "--n", "1000"],
        "databacked": [
            PY, str(HERE / "run_databacked.py"), "--workload", "overhead", "--n", "1000",
        ],
    }  # fmt: skip
    trivial = {name: [*cmd, "--out", str(out[name])] for name, cmd in overhead.items()}
    names = list(overhead)
    print("  bare, databacked: 1,000 trivial persisted calls cold / noop, taking turns")
    turns("overhead cold", short, trivial, reset)
    for name in names:
        reset(name)
        time_process(trivial[name], env=env)
    turns("overhead noop", short, {**trivial, IMPORTS_ALONE: floor})

    rows: list[dict] = []
    for (name, case), timing in figures.items():
        bare = figures.get(("bare", case))
        ratio = timing.median / bare.median if bare else float("nan")
        goal = GOALS.get(case) if name == "databacked" else None
        rows.append(
            {
                "section": "Pipeline",
                "case": f"{name}: {case}" + (f" (N={n})" if case.startswith("images") else ""),
                "seconds": timing.median,
                "span": timing.span,
                "peak_mib": timing.peak,
                "baseline": "bare loop",
                "baseline_seconds": bare.median if bare else None,
                "ratio": ratio,
                "goal": goal[0] if goal else "",
                "goal_met": goal[1](ratio) if goal and timing.ok else (None if not goal else False),
                "note": (FLOOR_NOTE if name == IMPORTS_ALONE else checks.get((name, case), ""))
                + ("" if timing.ok else " FAILED RUNS"),
            }
        )
    return rows


def _final(out: Path) -> Path:
    return out / "measurements.csv"


def section_scale(work: Path, full: bool) -> list[dict]:
    """Many trivial calls: a 10,000-call no-op rerun, and peak memory at 100,000 calls."""
    env = {**os.environ, "PEERS_DIR": str(PEERS_DIR)}
    rows = []
    sizes = [10_000] + ([100_000] if full else [])
    for count in sizes:
        out = work / f"scale{count}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            PY, str(HERE / "run_databacked.py"), "--workload", "overhead", "--n", str(count),
            "--out", str(out),
        ]  # fmt: skip
        print(f"  databacked: {count:,} trivial calls cold, then a no-op rerun")
        cold_wall, cold_peak, cold_code = time_process(cmd, env=env)
        noop_wall, noop_peak, noop_code = time_process(cmd, env=env)
        rows.append(
            {
                "section": "Scale",
                "case": f"{count:,} trivial calls, no-op rerun (whole process)",
                "seconds": noop_wall,
                "peak_mib": noop_peak,
                "goal": "< 1.5 s" if count == 10_000 else "",
                "goal_met": (noop_wall < 1.5 and noop_code == 0) if count == 10_000 else None,
                "note": f"cold run {cold_wall:.1f} s, peak {cold_peak:.0f} MiB"
                + ("" if cold_code == 0 else " (FAILED)"),
            }
        )
        if count == 100_000:
            rows.append(
                {
                    "section": "Scale",
                    "case": "100,000 trivial calls, cold: peak RSS",
                    "seconds": cold_wall,
                    "peak_mib": cold_peak,
                    "goal": "< 1024 MiB",
                    "goal_met": cold_peak < 1024 and cold_code == 0,
                }
            )
    return rows


# ---------------------------------------------------------------- report
def _fmt(value: object, spec: str = ".3f") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec) if value == value else "n/a"
    return str(value)


def render(rows: list[dict], header: str) -> str:
    lines = [header, ""]
    sections: dict[str, list[dict]] = {}
    for row in rows:
        sections.setdefault(row["section"], []).append(row)
    for section, items in sections.items():
        lines += [
            f"## {section}",
            "",
            "| case | seconds | baseline | baseline s | ratio | peak MiB | goal | met | note |",
            "|---|---:|---|---:|---:|---:|---|---|---|",
        ]
        for r in items:
            met = {True: "yes", False: "**no**", None: ""}[r.get("goal_met")]
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["case"],
                        _fmt(r.get("seconds")),
                        _fmt(r.get("baseline")),
                        _fmt(r.get("baseline_seconds")),
                        (_fmt(r.get("ratio"), ".2f") + "x") if r.get("ratio") else "",
                        _fmt(r.get("peak_mib"), ".0f"),
                        _fmt(r.get("goal")),
                        met,
                        _fmt(r.get("note")),
                    ]
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def byte_compile() -> None:
    """databacked as a wheel install has it: byte-compiled, like the peers' libraries. (An
    editable checkout under PYTHONDONTWRITEBYTECODE=1 would compile every module it imports
    in every timed process, about 0.8x of the bare loop's whole no-op run.)"""
    import compileall

    import databacked

    compileall.compile_dir(Path(databacked.__file__).parent, quiet=1)


def main() -> int:
    byte_compile()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", action="append", help="run only these sections (repeatable)")
    parser.add_argument("--n", type=int, default=200, help="fields of view (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs per figure (median)")
    parser.add_argument("--full", action="store_true", help="also 100,000 calls (slow)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    peers = [p for p in os.environ.get("PEERS", "").split(",") if p]
    wanted = set(
        args.only
        or [
            *("import", "hashing", "formats", "catalog", "pipeline", "scale", "executors"),
            *("specs", "provenance", "analysisrun", "ui", "prefect", "writes"),
        ]
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="databacked-bench-") as tmp:
        work = Path(tmp)
        plan: list[tuple[str, Callable[[], list[dict]]]] = [
            ("import", lambda: section_import(args.runs)),
            ("hashing", lambda: section_module("bench_hashing")),
            ("formats", lambda: section_module("bench_formats")),
            ("catalog", lambda: section_module("bench_catalog")),
            ("pipeline", lambda: section_pipeline(args.n, args.runs, peers, work)),
            ("scale", lambda: section_scale(work, args.full)),
            ("executors", lambda: section_module("bench_executors")),
            ("specs", lambda: section_module("bench_specs")),
            ("provenance", lambda: section_module("bench_provenance")),
            ("analysisrun", lambda: section_module("bench_analysisrun")),
            ("ui", lambda: section_module("bench_ui")),
            ("prefect", lambda: section_module("bench_prefect")),
            ("writes", lambda: section_module("bench_writes")),
        ]
        for name, section in plan:
            if name in wanted:
                print(f"[{name}]")
                rows += section()
    header = (
        "# databacked benchmark results\n\n"
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.\n"
        "Every ratio is against a baseline timed in the same run; absolute seconds on a "
        "shared 2-core machine are noise. Pipelines are whole processes, medians of "
        f"{args.runs} runs ({max(args.runs, 5)} for no-op, one new field and trivial calls), "
        "the bare loop and databacked taking turns."
    )
    report = render(rows, header)
    Path(args.output).write_text(report + "\n")
    print(report)
    missed = [r["case"] for r in rows if r.get("goal_met") is False]
    if missed:
        print("goals not met: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
