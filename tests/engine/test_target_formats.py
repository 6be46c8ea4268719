"""A target with an extension no format writes is refused before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import databacked as db
from databacked.errors import UnknownFormatError

STEPS = """
import numpy as np
import databacked as db

@db.step(target="out/{i}.foo")
def unknown(i: int):
    return np.arange(3) * i

@db.step(target="out/{i}.foo", format=db.Npy())
def given(i: int):
    return np.arange(3) * i

@db.step(target="out/{i}")
def bare(i: int):
    return np.arange(3) * i

@db.pipeline
def bad():
    return unknown.map(i=[1, 2])

@db.pipeline
def good():
    return given.map(i=[1, 2])

@db.pipeline
def no_ext():
    return bare(i=1)
"""


def test_unknown_extension_is_an_error_at_plan_time_unless_format_is_given(
    write_module: Callable[[str, str], ModuleType],
    store_url: str,
    catalog_db: str,
    tmp_path: Path,
) -> None:
    mod = write_module("target_fmt", STEPS)
    where = {"store": store_url, "catalog": catalog_db}
    with pytest.raises(UnknownFormatError, match=r"'out/1.foo' of step 'unknown'.*format="):
        db.plan(mod.bad, **where)
    with pytest.raises(UnknownFormatError, match="no extension"):
        db.run(mod.no_ext, executor="inline", **where)
    assert not (tmp_path / "data" / "out").exists()  # nothing was written
    result = db.run(mod.good, executor="inline", **where)
    assert result.ok
    np.testing.assert_array_equal(db.load(result.value[1]), [0, 2, 4])
    np.testing.assert_array_equal(db.load(store_url + "/out/2.foo", format=db.Npy()), [0, 2, 4])
