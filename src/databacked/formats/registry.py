"""Which format writes or reads what: by extension, by value type, by name or spec.

Built-in formats are known here; third-party ones register in the entry-point group
``databacked.formats`` (an entry point names a Format subclass) and are loaded on first need,
when a name or an extension is not a built-in one. Pickle is never chosen by default.
"""

from __future__ import annotations

from typing import Any

from databacked.errors import FormatError, UnknownFormatError
from databacked.formats.base import Format
from databacked.formats.simple import Json, Npy, Pickle
from databacked.formats.tables import Csv, Parquet
from databacked.formats.tiff import OmeTiff, Tiff
from databacked.formats.zarr import OmeZarr

ENTRY_POINT_GROUP = "databacked.formats"
BUILTIN: dict[str, type[Format]] = {
    cls.name: cls for cls in (OmeTiff, Tiff, OmeZarr, Csv, Parquet, Json, Npy, Pickle)
}
# Extensions that never choose a format by themselves (loading code from a file is opt-in).
OPT_IN_EXTENSIONS = (".pkl", ".pickle")
# Extensions bioio reads (through its plugins) that we have no writer for.
_READ_ONLY_IMAGES = (
    ".czi", ".nd2", ".lif", ".ims", ".dv", ".r3d", ".oib", ".oif", ".oir", ".vsi", ".lsm",
    ".sldy", ".svs", ".ndpi", ".scn", ".qptiff", ".jpg", ".jpeg", ".bmp", ".gif",
)  # fmt: skip

# name -> class of loaded plugins, under the key "loaded" once the entry points were read
_plugins: dict[str, dict[str, type[Format]]] = {}


def _builtin() -> dict[str, type[Format]]:
    from databacked.formats.files import FileCopy, LocalFile
    from databacked.formats.png import Png

    return {**BUILTIN, Png.name: Png, FileCopy.name: FileCopy, LocalFile.name: LocalFile}


def plugins() -> dict[str, type[Format]]:
    """Formats registered by installed distributions, loaded once."""
    if "loaded" not in _plugins:
        import importlib.metadata  # a scan of every distribution: only when asked

        found: dict[str, type[Format]] = {}
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = entry.load()
            except Exception as exc:  # a broken plugin must say which one it is
                raise FormatError(
                    f"The format plugin {entry.name!r} ({entry.value}) failed to import "
                    f"({type(exc).__name__}: {exc}); fix or uninstall that package."
                ) from exc
            if not (isinstance(cls, type) and issubclass(cls, Format)):
                raise FormatError(
                    f"The format plugin {entry.name!r} ({entry.value}) is not a "
                    "databacked Format subclass; its package must register one."
                )
            found[getattr(cls, "name", "") or entry.name] = cls
        _plugins["loaded"] = found
    return _plugins["loaded"]


def reset_plugins() -> None:
    """Forget loaded plugins (after installing one at run time, and in tests)."""
    _plugins.clear()


def _classes(*, with_plugins: bool) -> dict[str, type[Format]]:
    classes = _builtin()
    if with_plugins:
        classes = {**plugins(), **classes}
    return classes


def _by_extension(path: str, classes: dict[str, type[Format]]) -> Format | None:
    name = str(path).lower().rstrip("/")
    best: tuple[int, type[Format]] | None = None
    for cls in classes.values():
        if cls is Pickle:
            continue
        for raw in cls.extensions:
            ext = raw.lower() if raw.startswith(".") else f".{raw.lower()}"
            if name.endswith(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), cls)
    return best[1]() if best else None


def format_for_path(path: str) -> Format | None:
    """The format of a path by its longest matching extension (".ome.tiff" before ".tiff")."""
    found = _by_extension(path, _classes(with_plugins=False))
    if found is None:
        found = _by_extension(path, _classes(with_plugins=True))
    return found


def format_for_value(value: Any) -> Format:
    """The default format for a value: ndarray -> Npy, DataFrame -> Parquet, plain -> Json."""
    module = type(value).__module__.split(".")[0]
    kind = type(value).__name__
    if module == "numpy" and kind == "ndarray":
        return Npy()
    if module == "pandas" and kind == "DataFrame":
        return Parquet()
    if module == "dask" and kind == "Array":
        raise UnknownFormatError(
            "A dask array has no default format; give the target an image extension such as "
            "'.ome.zarr' or '.ome.tiff', or pass format=db.OmeZarr(dims=...)."
        )
    json = Json()
    if json.accepts(value):
        return json
    raise UnknownFormatError(
        f"No default format for a value of type {type(value).__module__}.{kind}; pass "
        "format= (for example format=db.Pickle() to opt in to pickling) or return a "
        "numpy array, a DataFrame or JSON-able data."
    )


def resolve_format(path: str | None, value: Any = None, format: Any = None) -> Format:
    """The format to use: the one given, else by the path's extension, else by the value."""
    if format is not None:
        return get_format(format)
    if path is not None:
        found = format_for_path(path)
        if found is not None:
            return found
        lower = str(path).lower()
        if lower.endswith(OPT_IN_EXTENSIONS):
            raise UnknownFormatError(
                f"{path!r} is a pickle file, which runs code when loaded, so it is never "
                "chosen by default; pass format=db.Pickle() to opt in."
            )
        if lower.endswith(_READ_ONLY_IMAGES):
            if value is not None:
                raise UnknownFormatError(
                    f"{path!r} has an image extension databacked reads (through bioio) but "
                    "cannot write; write images as .ome.tiff, .ome.zarr or .png instead."
                )
            from databacked.formats.images import AnyImage

            return AnyImage()
    if value is not None:
        return format_for_value(value)
    raise UnknownFormatError(
        f"No format for {path!r}: its extension is not one databacked knows; pass format= "
        "(for example format=db.OmeTiff() or format=db.Parquet())."
    )


def get_format(name_or_spec: Any) -> Format:
    """A Format from a Format, a class, a name ("ome-tiff") or a spec dict."""
    if isinstance(name_or_spec, Format):
        return name_or_spec
    if isinstance(name_or_spec, type) and issubclass(name_or_spec, Format):
        return name_or_spec()
    if isinstance(name_or_spec, str):
        spec: dict[str, Any] = {"name": name_or_spec}
    elif isinstance(name_or_spec, dict) and isinstance(name_or_spec.get("name"), str):
        spec = name_or_spec
    else:
        raise UnknownFormatError(
            f"{name_or_spec!r} is not a format: pass a Format such as db.OmeTiff(), "
            "a format name such as 'parquet', or a spec dict with a 'name'."
        )
    name = spec["name"].lower()
    if name == "image":
        from databacked.formats.images import AnyImage

        return AnyImage.from_spec(spec)
    cls = _classes(with_plugins=False).get(name) or _classes(with_plugins=True).get(name)
    if cls is None:
        known = ", ".join(sorted(_classes(with_plugins=True)))
        raise UnknownFormatError(
            f"Unknown format {name!r}; known formats are {known}. A third-party format must "
            f"be installed and registered in the {ENTRY_POINT_GROUP!r} entry-point group."
        )
    return cls.from_spec(spec)


__all__ = [
    "ENTRY_POINT_GROUP",
    "format_for_path",
    "format_for_value",
    "get_format",
    "plugins",
    "reset_plugins",
    "resolve_format",
]
