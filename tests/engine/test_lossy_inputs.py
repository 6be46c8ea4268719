"""Values stay values: a step reading back a stretched PNG is warned, by name, before it runs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

import databacked as db
from databacked.engine.lossy import LossyInputWarning

STEPS = """
import numpy as np
import databacked as db

@db.step(target="img/{{i}}.png")
def make(i: int):
    return np.full((8, 8), {value}, dtype=np.{dtype}) + np.arange(8, dtype=np.{dtype})

@db.step(target="shown/{{i}}.png", format=db.Png(stretch=True))
def show(i: int):
    return np.arange(64, dtype=np.uint16).reshape(8, 8) * i

@db.step(target="mean.json")
def mean(images: list):
    return float(np.mean([im.mean() for im in images]))

@db.step(target="mean_ok.json", lossy_ok=True)
def mean_ok(images: list):
    return float(np.mean([im.mean() for im in images]))

@db.step(target="first.json")
def first(image: db.File):
    return str(image)[:0]

@db.pipeline
def floats():
    images = make.map(i=[1, 2])
    return {{"mean": mean(images=images), "ok": mean_ok(images=images)}}

@db.pipeline
def stretched():
    return mean(images=show.map(i=[1, 2]))
"""


def _lossy(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, LossyInputWarning)]


def _run(mod: ModuleType, name: str, store: str, catalog: str) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = db.run(getattr(mod, name), store=store, catalog=catalog, executor="inline")
    return result, _lossy(record)


def test_a_float_image_stretched_into_png_warns_its_reader_by_name(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str
) -> None:
    mod = write_module("lossy_f", STEPS.format(value=0.25, dtype="float32"))
    result, messages = _run(mod, "floats", store_url, catalog_db)
    assert result.ok
    assert messages, "a consumer of stretched floats must be warned"
    assert all("'mean'" in m and "'images'" in m and "'make'" in m for m in messages)
    assert "contrast-stretched to 8 bits (from float32)" in messages[0]
    assert not any("'mean_ok'" in m for m in messages)  # lossy_ok=True silences
    # and the plan of the cached run warns too, before anything would run
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        db.plan(mod.floats, store=store_url, catalog=catalog_db)
    assert _lossy(record)


def test_integer_pngs_keep_their_values_and_warn_nobody(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str
) -> None:
    mod = write_module("lossy_i", STEPS.format(value=1000, dtype="uint16"))
    result, messages = _run(mod, "floats", store_url, catalog_db)
    assert result.ok and messages == []
    expected = np.mean([1000 + np.arange(8).mean()] * 2)
    assert result.value["mean"].load() == pytest.approx(expected)


def test_a_format_that_always_loses_warns_at_plan_time(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str
) -> None:
    mod = write_module("lossy_s", STEPS.format(value=0, dtype="uint8"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        plan = db.plan(mod.stretched, store=store_url, catalog=catalog_db)
    assert set(plan.calls["status"]) == {"run", "waiting"}  # nothing ran, still warned
    assert len(_lossy(record)) == 1 and "'show'" in _lossy(record)[0]


def test_a_db_file_argument_is_not_warned(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str
) -> None:
    source = STEPS.format(value=0.5, dtype="float32") + (
        "\n@db.pipeline\ndef files():\n    return first(image=make(i=1))\n"
    )
    mod = write_module("lossy_d", source)
    result, messages = _run(mod, "files", store_url, catalog_db)
    assert result.ok
    assert messages == []
