"""``DaskTaskRunner`` that finishes what a flow submitted, as Prefect 2 did.

Prefect 3 no longer waits for futures a flow never resolves: seed 001's flow submits
denoise → segment and returns, and with ``prefect_dask.DaskTaskRunner`` the cluster closes
under the pending tasks. This subclass waits for every submitted task before closing, so
seed 001's flow runs with only its import lines changed.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.futures import wait
from prefect_dask import DaskTaskRunner as _PrefectDaskTaskRunner

from databacked.integrations.prefect.batches import flush

log = logging.getLogger("databacked.integrations.prefect")


class DaskTaskRunner(_PrefectDaskTaskRunner):
    """``prefect_dask.DaskTaskRunner`` that waits for all submitted tasks on exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[Any] = []

    def submit(self, task: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        future = super().submit(task, parameters, *args, **kwargs)
        self._pending.append(future)  # list.append is atomic: no lock (the runner pickles)
        return future

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pending"] = []
        return state

    def __exit__(self, *args: Any) -> None:
        pending, self._pending = self._pending, []
        if pending:
            wait(pending)
        client = getattr(self, "_client", None)
        if client is not None:
            try:  # the catalog rows each worker process still holds, before it is closed
                client.run(flush)
            except Exception:  # a boundary: closing must go on; the rows flush at exit
                log.warning("Could not flush catalog rows on the Dask workers", exc_info=True)
        super().__exit__(*args)
        flush()  # catalog rows of tasks that ran in this process (threads of a local cluster)


__all__ = ["DaskTaskRunner"]
