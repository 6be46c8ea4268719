"""CPR's names (seed 001) on databacked: Sources for existing files, Targets for new ones.

``ImageSource``/``CSVSource`` name a file that exists; ``ImageTarget``/``CSVTarget`` name the
file a task produces. Unlike CPR, a resource is keyed by its content (blake3, trusted by stat
through the catalog's stat cache), a target is written atomically through the ``Store`` as soon
as ``set_data`` is called (an OME-TIFF keeping axes and resolution for images), and reading it
back checks its hash, so a file changed on disk is never handed to a task.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from databacked.errors import IntegrityError
from databacked.integrations.prefect.pointers import Pointer, check_file

_UNITS = {"micron", "um", "µm", "micrometer", "micrometre", None}


class Resource:
    """A file by location, name and extension (CPR's ``cpr.Resource.Resource``)."""

    kind = "Resource"

    def __init__(self, location: str, name: str, ext: str) -> None:
        self.location = location
        self.name = name
        self.ext = ext
        self._data: Any = None
        self._hash: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **options: Any) -> Any:
        """A resource for ``path`` (a local path or a URL such as ``s3://bucket/a.tif``)."""
        text = os.fspath(path)
        location, file_name = posixpath.split(text) if "://" in text else os.path.split(text)
        name, ext = _split_ext(file_name)
        resource = cls(location=location, name=name, ext=ext)
        for key, value in options.items():
            setattr(resource, key, value)
        return resource

    def get_name(self) -> str:
        return self.name

    def get_path(self) -> str:
        if "://" in self.location:
            return f"{self.location.rstrip('/')}/{self.name}{self.ext}"
        return os.path.join(self.location, f"{self.name}{self.ext}")

    def get_data(self) -> Any:
        raise NotImplementedError

    def content_hash(self) -> str:
        """The file's content hash (what cache keys use), through the stat cache."""
        if self._hash is None:
            from databacked.integrations.prefect.inputs import file_hash

            self._hash = file_hash(self.get_path())
        return self._hash

    def key_extras(self) -> dict[str, Any]:
        """What besides the bytes a task sees of this resource (keyed as parameters)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "name": self.name, "ext": self.ext}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_path()!r})"


def _split_ext(file_name: str) -> tuple[str, str]:
    for double in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if file_name.lower().endswith(double):
            return file_name[: -len(double)], file_name[-len(double) :]
    name, ext = os.path.splitext(file_name)
    return name, ext


class _Image:
    """Metadata (``axes``, ``unit``, ``PhysicalSize*``) and resolution of an image resource."""

    metadata: dict[str, Any] | None
    resolution: list[float] | None

    def get_metadata(self) -> dict[str, Any] | None:
        return self.metadata

    def get_resolution(self) -> list[float] | None:
        return self.resolution

    def set_metadata(self, metadata: dict[str, Any] | None) -> None:
        self.metadata = metadata

    def set_resolution(self, resolution: Any) -> None:
        self.resolution = list(resolution) if resolution is not None else None

    def key_extras(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "resolution": self.resolution}


class ImageSource(_Image, Resource):
    """An existing image file; ``get_data()`` returns its pixels as a numpy array."""

    kind = "ImageSource"

    def __init__(
        self,
        location: str,
        name: str,
        ext: str,
        metadata: dict[str, Any] | None = None,
        resolution: Any = None,
    ) -> None:
        super().__init__(location, name, ext)
        self.metadata = metadata
        self.resolution = list(resolution) if resolution is not None else None

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        metadata: dict[str, Any] | None = None,
        resolution: Any = None,
    ) -> ImageSource:
        return super().from_path(
            path, metadata=metadata, resolution=list(resolution) if resolution else None
        )

    def get_data(self) -> Any:
        from databacked.formats.registry import resolve_format
        from databacked.integrations.prefect.context import locate

        the_store, rel = locate(self.get_path())
        return resolve_format(rel).read(the_store, rel)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "metadata": self.metadata, "resolution": self.resolution}


class CSVSource(Resource):
    """An existing CSV file; ``get_data()`` returns a pandas DataFrame."""

    kind = "CSVSource"

    def get_data(self) -> Any:
        import pandas as pd

        from databacked.integrations.prefect.context import locate

        the_store, rel = locate(self.get_path())
        with the_store.open(rel) as file:
            return pd.read_csv(file)


class Target(Resource):
    """A file a task produces: ``set_data`` writes it (atomically, hashed while writing)."""

    kind = "Target"

    def __init__(self, location: str, name: str, ext: str, data_hash: str | None = None) -> None:
        super().__init__(location, name, ext)
        self.data_hash = data_hash
        self.pointer: Pointer | None = None
        self.fresh = False
        """True once written in this process and not yet recorded in the catalog."""

    def _format(self) -> Any:
        raise NotImplementedError

    def set_data(self, data: Any) -> None:
        """Write ``data`` to the target's path now; memory is freed, ``get_data`` reads back."""
        from databacked.integrations.prefect.context import locate

        the_store, rel = locate(self.get_path())
        fmt = self._format()
        record = fmt.write(self._prepare(data), the_store, rel)
        self.pointer = Pointer.from_record(the_store, record, fmt, None, self._pointer_meta())
        self.data_hash = self._hash = record.hash
        self._data = None
        self.fresh = True

    def _prepare(self, data: Any) -> Any:
        return data

    def _pointer_meta(self) -> dict[str, Any]:
        return {}

    def content_hash(self) -> str:
        if self.data_hash is None:
            raise IntegrityError(
                f"{self!r} has no data yet: call set_data() in the task that returns it."
            )
        return self.data_hash

    def get_data(self) -> Any:
        """The data as read back from the file, after checking its hash."""
        if self.pointer is None:
            raise IntegrityError(f"{self!r} has no data yet: call set_data() first.")
        return self.pointer.read()

    def check(self) -> None:
        """IntegrityError when the file no longer holds the bytes that were written."""
        if self.pointer is None:
            raise IntegrityError(f"{self!r} was never written.")
        p = self.pointer
        check_file(p.the_store(), p.path, p.hash, p.size, p.stamp)

    def to_json(self) -> dict[str, Any]:
        if self.pointer is not None:  # the pointer names the file: location is not repeated
            return {"pointer": self.pointer.to_json()}
        return {**super().to_json(), "data_hash": self.data_hash}


class ImageTarget(_Image, Target):
    """An image a task writes: an OME-TIFF with axes, channel names and pixel sizes."""

    kind = "ImageTarget"

    def __init__(  # noqa: PLR0917 - CPR's positional signature
        self,
        location: str,
        name: str,
        ext: str,
        metadata: dict[str, Any] | None = None,
        resolution: Any = None,
        data_hash: str | None = None,
    ) -> None:
        super().__init__(location, name, ext, data_hash)
        self.metadata = metadata
        self.resolution = list(resolution) if resolution is not None else None

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        metadata: dict[str, Any] | None = None,
        resolution: Any = None,
    ) -> ImageTarget:
        return super().from_path(
            path, metadata=metadata, resolution=list(resolution) if resolution else None
        )

    def _format(self) -> Any:
        from databacked.formats import OmeTiff
        from databacked.formats.registry import format_for_path

        if self.ext.lower() not in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
            found = format_for_path(self.get_path())
            if found is not None:
                return found
        meta = self.metadata or {}
        axes = str(meta.get("axes", "")).upper() or None
        if axes and not (set(axes) <= set("TCZYXS") and axes.endswith(("YX", "YXS"))):
            axes = None
        names = meta.get("channel_names") or meta.get("Channel", {}).get("Name")
        return OmeTiff(dims=axes, channel_names=names, physical_pixel_sizes=self._sizes())

    def _sizes(self) -> dict[str, float] | None:
        meta = self.metadata or {}
        sizes = {a: float(meta[f"PhysicalSize{a}"]) for a in "ZYX" if f"PhysicalSize{a}" in meta}
        if not sizes and self.resolution and meta.get("unit") in _UNITS:
            # tifffile's resolution is pixels per unit; OME wants micrometres per pixel
            *_, ry, rx = [float(r) for r in self.resolution]
            sizes = {"Y": 1.0 / ry, "X": 1.0 / rx}
        return sizes or None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "metadata": self.metadata, "resolution": self.resolution}


class CSVTarget(Target):
    """A table a task writes as CSV (index kept, as CPR does)."""

    kind = "CSVTarget"

    def __init__(
        self, location: str, name: str, ext: str = ".csv", data_hash: str | None = None
    ) -> None:
        super().__init__(location, name, ext, data_hash)

    def _format(self) -> Any:
        from databacked.formats import Csv

        return Csv(index=True)


KINDS: dict[str, type[Resource]] = {
    cls.kind: cls for cls in (ImageSource, CSVSource, ImageTarget, CSVTarget)
}


def from_json(kind: str, data: dict[str, Any]) -> Resource:
    """Rebuild a resource from its pointer JSON (no file is read here)."""
    cls = KINDS[kind]
    pointer = Pointer.from_json(data["pointer"]) if data.get("pointer") else None
    if pointer is not None:
        resource = cls.from_path(pointer.uri)
    else:
        resource = cls(data["location"], data["name"], data["ext"])
    for attr in ("metadata", "resolution"):
        if attr in data:
            setattr(resource, attr, data[attr])
    if isinstance(resource, Target):
        resource.pointer = pointer
        resource.data_hash = resource._hash = pointer.hash if pointer else data.get("data_hash")
    return resource


__all__ = [
    "CSVSource",
    "CSVTarget",
    "ImageSource",
    "ImageTarget",
    "Resource",
    "Target",
    "from_json",
]
