"""Where calls run: ``inline``, ``threads``, ``processes`` here; more by name or plugin.

>>> from databacked.executors import get_executor
>>> with get_executor("threads", workers=2) as ex:
...     ex.submit(pow, 2, 10).result()
1024
"""

from databacked.executors.base import BaseExecutor, Executor, ItemFailed, run_batch, split_batch
from databacked.executors.registry import ENTRY_POINT_GROUP, get_executor, known_executors

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseExecutor",
    "Executor",
    "ItemFailed",
    "get_executor",
    "known_executors",
    "run_batch",
    "split_batch",
]
