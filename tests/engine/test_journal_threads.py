"""On ``threads`` the calls of a run journal through one shared handle, opened once."""

from __future__ import annotations

import gc
import threading
import warnings

import databacked as db
from databacked.engine import journal
from databacked.engine.worker import CallOutcome

THREADS = 16


def test_threads_finishing_at_once_share_one_journal_file_and_leave_none_open(tmp_path):
    store = db.Store(tmp_path / "data")
    run = journal.new_id()
    start = threading.Barrier(THREADS)

    def finish(i: int) -> None:
        start.wait()  # every thread writes the run's first entry at the same moment
        outcome = CallOutcome(
            key=f"{i:064x}", status="failed", error_type="ValueError", error_message=str(i)
        )
        journal.write(store, outcome, run)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        threads = [threading.Thread(target=finish, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        files = list((tmp_path / "data" / journal.JOURNAL / run).iterdir())
        lines = files[0].read_text().splitlines()
        journal.forget(store, run)
        gc.collect()  # a handle that lost the race would be closed here, with a warning

    assert len(files) == 1
    assert sorted(lines) == sorted(set(lines)) and len(lines) == THREADS
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    assert not (tmp_path / "data" / journal.JOURNAL / run).exists()
