"""What ``analyze`` and ``postprocess`` receive, and the ``output`` that collects images.

Images are collected as bytes in every mode (a notebook, a local lane process, an
orchestrator's lane): the same figure gives the same bytes wherever it was drawn, and the
runner decides where they land (the answer tar, or the store and ``output_dir``).
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd

P = TypeVar("P")
R = TypeVar("R")


class ImageCollector:
    """The ``output`` of AnalyzeArgs: ``output(fig, name, image_type, **savefig_kwargs)``.

    ``fig`` is a matplotlib Figure (anything with ``savefig``) or the image's bytes.
    """

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.types: dict[str, str] = {}

    def __call__(self, fig: Any, name: str, image_type: str = "", **kwargs: Any) -> None:
        if isinstance(fig, bytes | bytearray):
            data = bytes(fig)
        else:
            suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            kwargs.setdefault("format", suffix or "png")
            buffer = io.BytesIO()
            fig.savefig(buffer, **kwargs)
            data = buffer.getvalue()
            _close(fig)
        self.images[name] = data
        self.types[name] = image_type or ""


def _close(fig: Any) -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        with contextlib.suppress(TypeError, ValueError):  # not a pyplot-managed figure
            pyplot.close(fig)


@dataclass
class AnalyzeArgs(Generic[P, R]):
    """What ``analyze`` gets for one lane."""

    params: P
    """The analysis parameters (the user's pydantic model)."""
    data_name: str
    """The lane's data name (from the image-analysis file names)."""
    sample_name: str
    """The lane's sample name (from the sample-names CSV)."""
    image_analysis_results: R
    """The user's NamedTuple, one ``Fields`` per image-analysis result set."""
    output: ImageCollector
    """Saves a figure: ``args.output(fig, "name.png", "histogram")``."""


@dataclass
class PostprocessArgs(Generic[P]):
    """What ``postprocess`` gets: every lane's result, one row per lane."""

    params: P
    analysis_results: pd.DataFrame


__all__ = ["AnalyzeArgs", "ImageCollector", "PostprocessArgs"]
