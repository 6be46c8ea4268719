"""``DatabackedCache``: a Prefect ``CachePolicy`` keyed on databacked's call key.

Prefect's own policies hash ``inspect.getsource`` (a comment changes the key) and pickle
inputs (files are keyed by path). This one uses databacked's fingerprint of the task's code
and the content hashes of file inputs; it locks keys through the catalog's leases under
``SERIALIZABLE`` isolation, so two flows computing the same key compute it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.cache_policies import CachePolicy

from databacked.integrations.prefect.inputs import key_for, task_extras
from databacked.integrations.prefect.locks import CatalogLockManager


@dataclass
class DatabackedCache(CachePolicy):
    """Cache key = databacked call key (fingerprint + canonical parameters + content hashes).

    >>> @task(cache_policy=DatabackedCache(), result_serializer=DatabackedSerializer())
    ... def denoise(image: ImageSource, sigma: float) -> ImageTarget: ...  # doctest: +SKIP
    """

    isolation_level: Any = "SERIALIZABLE"
    lock_manager: Any = field(default_factory=CatalogLockManager)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        task = task_ctx.task
        return key_for(task, inputs, task_extras(task, inputs))


__all__ = ["DatabackedCache"]
