"""``DatabackedSerializer`` (Prefect type ``"databacked"``): slim JSON pointers, no pickle.

Prefect stores a task's result through its result serializer. This one writes JSON: plain
JSON values as they are, and for files (CPR resources, outputs of our ``task``) a pointer
(store, path, hash, size, stamp, format, key) well under 1 KiB. ``loads`` checks each target
against its hash (by stat while the stamp is the recorded one): a file changed on disk raises,
which Prefect takes as a cache miss, so the task recomputes it instead of returning it.
"""

from __future__ import annotations

import builtins
import json
import sys
from typing import Any, Literal

from prefect.serializers import Serializer

from databacked.errors import DatabackedError, IntegrityError
from databacked.integrations.prefect import recording
from databacked.integrations.prefect.lazy import lazy_value, pointer_of
from databacked.integrations.prefect.pointers import Pointer
from databacked.integrations.prefect.resources import KINDS, Resource, Target, from_json

TAG = "__databacked__"


class DatabackedSerializer(Serializer):
    """Results as JSON pointers to native files; registered with Prefect as ``"databacked"``."""

    type: Literal["databacked"] = "databacked"

    def dumps(self, obj: Any) -> bytes:
        written = recording.outputs_of_current_run()
        if written:
            # our task decorator wrote the value to a file: the pointer is the result
            recording.record_outputs(written)
            recording.forget_current_run()
            payload: Any = {TAG: "result", "pointer": written[-1].to_json()}
            return json.dumps(payload, separators=(",", ":")).encode()
        fresh: list[Pointer] = []
        text = json.dumps(obj, default=lambda o: _encode(o, fresh), separators=(",", ":"))
        if fresh:
            recording.record_outputs(fresh)
        return text.encode()

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob.decode(), object_hook=_decode)


def cpr_serializer() -> DatabackedSerializer:
    """CPR's name for the flow's ``result_serializer``."""
    return DatabackedSerializer()


def _encode(obj: Any, fresh: list[Pointer]) -> Any:
    if isinstance(obj, Resource):
        if isinstance(obj, Target) and obj.fresh and obj.pointer is not None:
            fresh.append(obj.pointer)
            obj.fresh = False
        return {TAG: obj.kind, **obj.to_json()}
    pointer = pointer_of(obj)
    if pointer is not None:
        return {TAG: "result", "pointer": pointer.to_json()}
    from databacked.artifact import Artifact

    if isinstance(obj, Artifact):
        pointer = Pointer.from_record(obj.store, obj.to_record(), obj.format, None)
        return {TAG: "artifact", "pointer": pointer.to_json()}
    if isinstance(obj, BaseException):
        # Prefect passes a failed task's exception through the result serializer too
        return {TAG: "exception", "type": _qualname(type(obj)), "message": str(obj)}
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():
        return item()  # numpy scalars
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(
        f"A {type(obj).__name__} cannot go in a databacked result (JSON pointers only): return "
        "an ImageTarget/CSVTarget, use databacked's task(result=..., target=...), or return "
        "JSON-like data."
    )


def _decode(data: dict[str, Any]) -> Any:
    kind = data.get(TAG)
    if kind is None:
        return data
    if kind in ("result", "artifact"):
        pointer = Pointer.from_json(data["pointer"])
        if kind == "artifact":
            from databacked.artifact import Artifact

            pointer.check()
            return Artifact.from_record(pointer.the_store(), pointer.record())
        return lazy_value(_checked(pointer))
    if kind == "exception":
        return _exception(data.get("type", ""), data.get("message", ""))
    if kind in KINDS:
        resource = from_json(kind, {k: v for k, v in data.items() if k != TAG})
        if isinstance(resource, Target):
            resource.check()
        return resource
    raise IntegrityError(f"Unknown databacked result kind {kind!r}; upgrade databacked.")


def _checked(pointer: Pointer) -> Pointer:
    pointer.check()
    return pointer


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _exception(qualname: str, message: str) -> BaseException:
    """The same exception type when it is already imported here (nothing is imported)."""
    module, _, name = qualname.rpartition(".")
    cls = getattr(sys.modules.get(module) or builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except TypeError:
            pass
    return DatabackedError(f"{qualname}: {message}")


__all__ = ["DatabackedSerializer", "cpr_serializer"]
