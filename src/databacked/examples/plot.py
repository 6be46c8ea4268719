"""A small bar chart drawn straight into an RGB array, so the demo needs no plotting library.

Pillow (already installed with imageio) draws the text; the bars and dots are numpy slices.
The same numbers always give the same pixels, so the plot's PNG is byte-deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 480, 320
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 60, 20, 40, 40
_BAR = (92, 140, 200)
_DOT = (30, 30, 30)
_AXIS = (0, 0, 0)


def bar_chart(groups: Mapping[str, Sequence[float]], *, title: str) -> np.ndarray:
    """One bar per group at its mean, one dot per value, as an (H, W, 3) uint8 image.

    >>> bar_chart({"A01": [1.0, 2.0], "A02": [3.0]}, title="areas").shape
    (320, 480, 3)
    """
    canvas = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    left, right = _MARGIN_LEFT, WIDTH - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, HEIGHT - _MARGIN_BOTTOM
    draw.text((left, 12), title, fill=_AXIS, font=font)

    values = [float(v) for vs in groups.values() for v in vs]
    y_max = _nice_ceiling(max(values)) if values else 1.0

    def y_of(value: float) -> int:
        return round(bottom - (bottom - top) * value / y_max)

    slot = (right - left) / max(1, len(groups))
    for index, (name, group) in enumerate(groups.items()):
        x0 = round(left + slot * (index + 0.2))
        x1 = round(left + slot * (index + 0.8))
        if len(group):
            draw.rectangle((x0, y_of(float(np.mean(group))), x1, bottom), fill=_BAR)
        # Spread the dots across the bar deterministically so overlapping values stay visible.
        for k, value in enumerate(group):
            x = round(x0 + (x1 - x0) * (k + 1) / (len(group) + 1))
            y = y_of(float(value))
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=_DOT)
        draw.text((round((x0 + x1) / 2), bottom + 6), name, fill=_AXIS, font=font, anchor="ma")

    draw.line((left, top, left, bottom), fill=_AXIS)
    draw.line((left, bottom, right, bottom), fill=_AXIS)
    for tick in (0.0, y_max / 2, y_max):
        y = y_of(tick)
        draw.line((left - 4, y, left, y), fill=_AXIS)
        draw.text((left - 6, y), f"{tick:g}", fill=_AXIS, font=font, anchor="rm")
    return np.asarray(canvas, dtype=np.uint8).copy()


def _nice_ceiling(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above ``value``, for a readable axis."""
    if value <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)
