"""The demo's bar chart: an RGB image whose bars follow the numbers."""

from __future__ import annotations

import numpy as np

from databacked.examples.plot import bar_chart


def _bar_height(image: np.ndarray, column: int) -> int:
    bar = np.all(image[:, column] == (92, 140, 200), axis=-1)
    return int(bar.sum())


def test_bars_are_proportional_to_the_group_means() -> None:
    image = bar_chart({"A01": [10.0, 10.0], "A02": [20.0]}, title="areas")
    assert image.shape == (320, 480, 3)
    assert image.dtype == np.uint8
    # Columns a little left of each bar's centre: inside the bar, clear of the dots.
    left, right = 60, 480 - 20
    slot = (right - left) / 2
    short = _bar_height(image, round(left + slot * 0.3))
    tall = _bar_height(image, round(left + slot * 1.3))
    assert short > 0
    assert abs(tall - 2 * short) <= 2


def test_same_numbers_same_pixels_and_empty_groups_are_fine() -> None:
    groups = {"A01": [1.5, 2.5], "B01": []}
    assert np.array_equal(bar_chart(groups, title="t"), bar_chart(groups, title="t"))
    assert bar_chart({}, title="nothing").shape == (320, 480, 3)
