"""Small formats for plain values: Json, Npy, and the opt-in Pickle."""

from __future__ import annotations

import io
import json
from typing import Any

from databacked.errors import FormatError
from databacked.formats.base import Format, corrupt


def _plain(value: Any) -> Any:
    # numpy scalars and arrays inside JSON values become Python numbers and lists
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _json_ok(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_json_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v) for k, v in value.items())
    return callable(getattr(value, "tolist", None)) and type(value).__module__ == "numpy"


class Json(Format):
    """JSON values (dict, list, str, numbers, bool, None; numpy scalars become numbers)."""

    name = "json"
    extensions = (".json",)

    def __init__(self, indent: int | None = 2) -> None:
        super().__init__(indent=indent)

    def accepts(self, value: Any) -> bool:
        return _json_ok(value)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        text = json.dumps(
            value, indent=self.options["indent"], sort_keys=True, default=_plain, allow_nan=True
        )
        file.write((text + "\n").encode())
        return {"type": type(value).__name__}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        data = store.read_bytes(path)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise corrupt(self, store, path, exc) from exc


class Npy(Format):
    """One numpy array as a ``.npy`` file (never pickled objects)."""

    name = "npy"
    extensions = (".npy",)

    def __init__(self) -> None:
        super().__init__()

    def accepts(self, value: Any) -> bool:
        import numpy as np

        return isinstance(value, np.ndarray | np.generic) and np.asarray(value).dtype != object

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        import numpy as np

        array = np.asarray(value)
        np.save(file, array, allow_pickle=False)
        return {"shape": list(array.shape), "dtype": str(array.dtype)}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import numpy as np

        data = store.read_bytes(path)
        try:
            _check_npy_header(store, path, data)
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise corrupt(self, store, path, exc) from exc


class Pickle(Format):
    """Opt-in only: any picklable value. Loading runs code from the file, so never by default."""

    name = "pickle"
    extensions = (".pkl", ".pickle")

    def __init__(self, protocol: int = 5) -> None:
        super().__init__(protocol=protocol)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        import pickle

        try:
            data = pickle.dumps(value, protocol=self.options["protocol"])
        except (pickle.PicklingError, AttributeError) as exc:
            raise FormatError(
                f"A {type(value).__name__} cannot be pickled ({exc}); "
                "return a value of a native format instead."
            ) from exc
        file.write(data)
        return {"type": type(value).__name__}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import pickle

        data = store.read_bytes(path)
        try:
            return pickle.loads(data)  # noqa: S301 - the user opted in with format=Pickle()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise corrupt(self, store, path, exc) from exc


__all__ = ["Json", "Npy", "Pickle"]


def _check_npy_header(store: Any, path: str, data: bytes) -> None:
    from databacked.formats.limits import check_npy

    check_npy(store.uri(path), data)
