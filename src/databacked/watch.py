"""The watcher: run the affected pipelines whenever their input repos change.

A local store is watched through watchdog (inotify on Linux); an object store is polled:
each ``interval`` its watched repos are listed and their ETags compared. Bursts of events are
coalesced (``debounce``), so a plate whose images arrive one by one triggers a few runs, not
one per file. Staging files of writes in progress (``.databacked-tmp-*``) and ``.databacked``
entries never trigger anything, nor do repos no pipeline reads (a pipeline's output repo
triggers only when another pipeline reads it).

Each trigger calls the spec runner for the pipelines that read a changed repo, their
downstream pipelines and their upstream ones (so a reducer sees which upstream datums are
still pending). The runner's leases keep several watchers on one catalog from computing a
datum twice. SIGINT/SIGTERM (when watching from the main thread) or ``stop_event`` stop the
loop after the current run: its outputs are recorded and its leases released; a second
signal abandons the run (writes are atomic, so nothing is left half-written).

Example::

    stop = threading.Event()
    watch("pipelines/", store="data", catalog="sqlite:///c.db", stop_event=stop)
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databacked.catalog import Catalog
from databacked.engine.events import CallEvent
from databacked.errors import DatabackedError
from databacked.executors import Executor, get_executor
from databacked.specs.loading import load_specs
from databacked.specs.model import Spec
from databacked.specs.runner import SpecRunResult, run_specs
from databacked.store import STAGING_PREFIX, Store

DEFAULT_INTERVAL = 5.0
"""Seconds between listings of an object store."""
DEFAULT_DEBOUNCE = 0.5
"""Seconds without a new event before a burst of events triggers a run."""
MAX_DELAY = 4
"""A burst that never goes quiet still triggers after this many debounce periods."""
_WRITE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})
SPECS = "<specs>"
"""Stands for the spec files among the changed repos: an edit re-runs every pipeline."""
_SPEC_SUFFIXES = (".yml", ".yaml", ".json")
log = logging.getLogger("databacked.watch")


def _observe(path: Path, recursive: bool, on_path: Callable[[str], None]) -> Any:
    """A started watchdog observer calling ``on_path`` for each path written under ``path``."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            # Reads (opened, closed without writing) and link-count changes (attrib: the
            # runner hard-links inputs) are no news; writes and renames are.
            if event.event_type not in _WRITE_EVENTS:
                return
            for changed in (event.src_path, getattr(event, "dest_path", "")):
                if changed:
                    on_path(os.fsdecode(changed))

    observer = Observer()
    observer.schedule(Handler(), str(path), recursive=recursive)
    observer.daemon = True
    observer.start()
    return observer


@dataclass(slots=True)
class WatchReport:
    """What a watcher did before it stopped."""

    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """Datum status (ran, cached, failed, waiting, removed) -> total over all runs."""

    def add(self, result: SpecRunResult) -> None:
        self.runs += 1
        for per in result.counts().values():
            for status, n in per.items():
                self.counts[status] = self.counts.get(status, 0) + n


def watch(
    folder: str | os.PathLike[str],
    *,
    store: Store | str,
    catalog: Catalog | str | None = None,
    executor: Executor | str = "inline",
    workers: int | None = None,
    interval: float = DEFAULT_INTERVAL,
    debounce: float = DEFAULT_DEBOUNCE,
    once: bool = False,
    stop_event: threading.Event | None = None,
    on_run: Callable[[SpecRunResult], None] | None = None,
    progress: Callable[[CallEvent], None] | None = None,
) -> WatchReport:
    """Run the specs in ``folder`` now, then again for what changes, until stopped.

    ``once=True`` makes the first (catch-up) run only. Returns what all runs did.
    """
    store = Store.from_url(store)
    project = str(_project(folder))
    if Path(project).is_dir() and project not in sys.path:
        # As the runner does for a folder: a list of specs (a partial run) must import the
        # project's transform modules too. Appended, so it never shadows installed modules.
        sys.path.append(project)
    own_catalog = not isinstance(catalog, Catalog)
    cat = Catalog.coerce(catalog)
    pool = get_executor(executor, workers=workers) if isinstance(executor, str) else executor
    stop = stop_event or threading.Event()
    report = WatchReport()

    absent: set[str] = set()

    def run(changed: set[str] | None) -> None:
        specs = _runnable(folder, changed, store, absent)
        if specs is None:
            return
        result = run_specs(specs, store=store, catalog=cat, executor=pool, progress=progress)
        report.add(result)
        if on_run is not None:
            on_run(result)

    try:
        with _stop_on_signals(stop):
            if once:
                run(None)
                return report
            # Watch first, then catch up: a file arriving during the first run is not missed.
            source = _source(store, load_specs(folder), interval)
            source.watch_specs(Path(folder))
            try:
                run(None)
                while not stop.is_set():
                    changed = source.wait_for_changes(stop, debounce)
                    if not changed or stop.is_set():
                        continue
                    try:
                        if SPECS in changed:  # an edited spec: everything, with new repos
                            source.repos = {r for s in load_specs(folder) for r in s.input_repos()}
                        run(None if SPECS in changed else changed)
                    except DatabackedError as exc:
                        # A spec edited into a bad state, a catalog briefly unreachable: a
                        # service says so and keeps watching (the first run fails loudly).
                        log.error("%s (still watching)", exc)
            finally:
                source.close()
    finally:
        if isinstance(executor, str):
            pool.close()
        if own_catalog:
            cat.close()
    return report


def _runnable(
    folder: str | os.PathLike[str], changed: set[str] | None, store: Store, absent: set[str]
) -> Any:
    """What to hand the runner: the folder, a list of specs, or None (nothing can run yet).

    For changed repos: the pipelines reading them, their downstream and their upstream ones
    (all when ``changed`` is None). Pipelines reading a repo that does not exist yet (an
    object store has no empty folders) wait for it, with a warning (logged) once per repo. Specs are
    re-read, so an edited pipeline takes effect. The folder itself is passed when every
    pipeline runs, or when a ``cmd`` pipeline needs the project folder as its working folder
    (the runner uses the current folder for a list of specs).
    """
    specs = load_specs(folder)
    chosen = {s.pipeline for s in specs}
    if changed is not None:
        readers = {s.pipeline for s in specs if changed & set(s.input_repos())}
        chosen = _closure(specs, readers, "down") | _closure(specs, readers, "up")
    names = {s.pipeline for s in specs}
    repos = {r for s in specs if s.pipeline in chosen for r in s.input_repos() if r not in names}
    missing = {r for r in repos if not store.exists(r)}
    for repo in sorted(missing - absent):
        log.warning(
            "repo '%s' does not exist in %s yet; the pipelines reading it wait until files "
            "arrive there.",
            repo,
            store.url,
        )
    absent.clear()
    absent.update(missing)
    blocked = _closure(specs, {s.pipeline for s in specs if missing & set(s.input_repos())}, "down")
    subset = [s for s in specs if s.pipeline in chosen - blocked]
    if not subset:
        return None
    uses_cmd = any(s.transform.python is None for s in subset)
    if len(subset) == len(specs):
        return folder
    if uses_cmd and not missing and _project(folder) != Path.cwd().resolve():
        return folder  # the runner runs commands in the project folder only for a folder
    return subset


def _closure(specs: Sequence[Spec], start: set[str], direction: str) -> set[str]:
    """``start`` and every pipeline downstream (``down``) or upstream (``up``) of it."""
    by_name = {s.pipeline: s for s in specs}
    chosen = set(start)
    todo = list(start)
    while todo:
        name = todo.pop()
        if direction == "down":
            nexts = [s.pipeline for s in specs if name in s.input_repos()]
        else:
            nexts = [r for r in by_name[name].input_repos() if r in by_name]
        for n in nexts:
            if n not in chosen:
                chosen.add(n)
                todo.append(n)
    return chosen


def _project(folder: str | os.PathLike[str]) -> Path:
    from databacked.specs.loading import project_folder

    return project_folder(folder)


# --- where changes come from ----------------------------------------------------------------


class _Changes:
    """Repos with pending changes, collected by a thread and taken by the loop."""

    def __init__(self, repos: set[str]) -> None:
        self.repos = repos
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._first = self._last = 0.0
        self._wake = threading.Event()
        self._observers: list[Any] = []

    def note(self, repo: str) -> None:
        if repo not in self.repos and repo != SPECS:
            return
        with self._lock:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending.add(repo)
            self._last = now
        self._wake.set()

    def wait_for_changes(self, stop: threading.Event, debounce: float) -> set[str]:
        """Block until a burst of changes has settled (or the stop event); take them."""
        tick = min(0.1, debounce) if debounce > 0 else 0.1
        while not stop.is_set():
            self._wake.wait(tick)
            with self._lock:
                if self._pending:
                    now = time.monotonic()
                    quiet = now - self._last >= debounce
                    overdue = now - self._first >= MAX_DELAY * debounce
                    if quiet or overdue:
                        taken, self._pending = self._pending, set()
                        self._wake.clear()
                        return taken
                else:
                    self._wake.clear()
        return set()

    def watch_specs(self, folder: Path) -> None:
        """Spec files edited, added or removed count as a change (local folders only)."""
        base = folder if folder.is_dir() else folder.parent

        def on_path(path: str) -> None:
            if path.endswith(_SPEC_SUFFIXES) and (folder.is_dir() or Path(path) == folder):
                self.note(SPECS)

        self._observers.append(_observe(base, True, on_path))

    def close(self) -> None:
        for observer in self._observers:
            observer.stop()
            observer.join(timeout=5)


class _LocalChanges(_Changes):
    """watchdog events under a local store's root, mapped to the repo they fall in."""

    def __init__(self, root: Path, repos: set[str]) -> None:
        super().__init__(repos)
        self.root = root

        def on_path(path: str) -> None:
            repo = self.repo_of(path)
            if repo is not None:
                self.note(repo)

        root.mkdir(parents=True, exist_ok=True)
        self._observers.append(_observe(root, True, on_path))

    def repo_of(self, path: str) -> str | None:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return None
        if not parts or any(p.startswith((STAGING_PREFIX, ".databacked")) for p in parts):
            return None
        return parts[0]


class _PolledChanges(_Changes):
    """An object store's watched repos listed every ``interval``; ETag changes are news."""

    def __init__(self, store: Store, repos: set[str], interval: float) -> None:
        super().__init__(repos)
        self.store, self.interval = store, interval
        self._stop = threading.Event()
        self._seen = {repo: self._snapshot(repo) for repo in sorted(repos)}
        self._thread = threading.Thread(target=self._poll, name="databacked-poll", daemon=True)
        self._thread.start()

    def _snapshot(self, repo: str) -> dict[str, str]:
        listing = self.store.list(repo) if self.store.exists(repo) else []
        return {
            info.path: info.stamp
            for info in listing
            if not any(p.startswith((STAGING_PREFIX, ".databacked")) for p in info.path.split("/"))
        }

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            for repo in sorted(self.repos):
                try:
                    now = self._snapshot(repo)
                except Exception as exc:  # a flaky listing: report, try again next interval
                    log.warning("listing repo '%s' failed: %s (trying again)", repo, exc)
                    continue
                if now != self._seen.get(repo):
                    self._seen[repo] = now
                    self.note(repo)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.interval))
        super().close()


def _source(store: Store, specs: Sequence[Spec], interval: float) -> _Changes:
    repos = {repo for s in specs for repo in s.input_repos()}
    if store.is_local:
        return _LocalChanges(Path(store.url), repos)  # a local store's url is its root
    return _PolledChanges(store, repos, interval)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop after the current run. Second: abandon it (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["DEFAULT_DEBOUNCE", "DEFAULT_INTERVAL", "WatchReport", "watch"]
