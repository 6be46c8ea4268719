"""Worked examples: a synthetic plate and seed 000's cell pipeline, run by ``databacked demo``.

from databacked.examples import make_plate
from databacked.examples.cells import cells

dataset = make_plate("raw")
result = db.run(cells, dataset, store="data")
"""

from __future__ import annotations

from databacked.examples.synthetic import make_plate

__all__ = ["make_plate"]
