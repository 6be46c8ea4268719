"""Json, Npy and Pickle against the format contract, plus their own edge cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from databacked.errors import CorruptFileError, FormatError
from databacked.formats import Json, Npy, Pickle
from databacked.store import Store
from databacked.testing.format_contract import FormatContract


class TestJson(FormatContract):
    @pytest.fixture
    def format(self) -> Json:
        return Json()

    @pytest.fixture
    def sample_value(self) -> Any:
        return {"b": [1, 2.5, None, True], "a": "text", "nested": {"x": []}}


class TestNpy(FormatContract):
    @pytest.fixture
    def format(self) -> Npy:
        return Npy()

    @pytest.fixture
    def sample_value(self) -> np.ndarray:
        return np.arange(24, dtype=np.float32).reshape(2, 3, 4)


class TestPickle(FormatContract):
    @pytest.fixture
    def format(self) -> Pickle:
        return Pickle()

    @pytest.fixture
    def sample_value(self) -> Any:
        return {"set": {1, 2, 3}, "complex": 1 + 2j}

    @pytest.fixture
    def refused_value(self) -> Any:
        return lambda: None  # functions defined inline cannot be pickled

    def test_refused_value_leaves_nothing(
        self, format: Pickle, refused_value: Any, store: Store
    ) -> None:
        # Pickle accepts any value up front; the refusal comes from pickling itself
        with pytest.raises(FormatError, match="cannot be pickled"):
            format.write(refused_value, store, "x.pkl")
        assert list(store.list()) == []


def test_json_converts_numpy_scalars_and_arrays(tmp_path: Any) -> None:
    store = Store(tmp_path)
    Json().write({"n": np.int64(3), "v": np.arange(3)}, store, "n.json")
    assert Json().read(store, "n.json") == {"n": 3, "v": [0, 1, 2]}


def test_npy_refuses_object_arrays_and_never_unpickles(tmp_path: Any) -> None:
    store = Store(tmp_path)
    with pytest.raises(FormatError):
        Npy().write(np.array([{"a": 1}], dtype=object), store, "o.npy")
    # a .npy holding pickled objects (written outside databacked) is not loaded
    with store.writer("evil.npy") as out:
        np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptFileError, match=r"evil\.npy"):
        Npy().read(store, "evil.npy")


def test_corrupt_json_names_the_file(tmp_path: Any) -> None:
    store = Store(tmp_path)
    store.put_bytes("bad.json", b"{not json")
    with pytest.raises(CorruptFileError, match=r"bad\.json"):
        Json().read(store, "bad.json")
