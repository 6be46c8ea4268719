"""The graph of specs: pipeline P writes repo P, so a spec reading repo P runs after P."""

from __future__ import annotations

import graphlib
import logging
from collections.abc import Sequence

from databacked.errors import SpecError
from databacked.specs.model import Spec
from databacked.store import Store

log = logging.getLogger("databacked.specs.graph")


def spec_order(specs: Sequence[Spec], store: Store | None = None) -> list[Spec]:
    """Specs in dependency order (ties by name, so the order is stable).

    A cycle is a SpecError naming it. With ``store``, an input repo that is neither a folder
    of the store nor another pipeline's output is a logged warning: its pipelines wait for files to
    arrive there, as the watcher says too (a repo may be created after its spec).
    """
    by_name = {s.pipeline: s for s in specs}
    graph = {s.pipeline: {r for r in s.input_repos() if r in by_name} for s in specs}
    if store is not None:
        for spec in specs:
            for repo in spec.input_repos():
                if repo not in by_name and not _repo_exists(store, repo):
                    log.warning(
                        "%s: repo '%s' does not exist in %s yet; the pipelines reading it wait "
                        "until files arrive there (or fix the spec if the name is wrong).",
                        spec.origin,
                        repo,
                        store.url,
                    )
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        raise SpecError(
            f"pipelines form a cycle: {' -> '.join(cycle)} (each reads the repo the previous "
            f"one writes; pipeline '{cycle[0]}' is defined at {by_name[cycle[0]].origin}); "
            "break the cycle by reading another repo."
        ) from exc
    order: list[Spec] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(by_name[name] for name in ready)
        sorter.done(*ready)
    return order


def upstream_pipelines(spec: Spec, specs: Sequence[Spec]) -> list[str]:
    """Names of the pipelines whose output repos ``spec`` reads."""
    names = {s.pipeline for s in specs}
    return [r for r in spec.input_repos() if r in names]


def _repo_exists(store: Store, repo: str) -> bool:
    if store.exists(repo):
        return True
    # Object stores have no folders: a repo exists when any object lives under it.
    return next(iter(store.list(repo)), None) is not None


__all__ = ["spec_order", "upstream_pipelines"]
