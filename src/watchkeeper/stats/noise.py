"""The noise cache: simulated no-drift statistics shared across columns and windows.

A calibrated drift decision simulates the statistic's null distribution (2,000 replicates,
:func:`watchkeeper.stats.calibration.null_threshold`), which was most of a window's
evaluation. The simulation depends only on the statistic, the reference's cells and the
effective sample size, and each runs on a random stream seeded by those, never on what ran
before it. So ``compare()`` lets the columns of one report share a simulation (every numeric
column binned at equal mass has the same reference cells), and the evaluator does the same
across the columns of a window and across windows (``window_drift.DriftCache.noise``): a
window whose profile changed (late events) or windows of the same size reuse it; a fitted
``Reference`` does it across the chunks it compares. A cached
sample gives the same threshold to the last bit as a fresh one;
``tests/service/test_noise_cache.py`` checks it.

A ``NoiseCache`` also keeps, in ``calibrations``, each column's finished calibration (the
threshold, and the companion's): it depends only on the reference's cells (and its chunks'),
the window's size, the false-alarm rate and the seed, so the chunks of one size that a fitted
``Reference`` compares get it from there instead of mixing in the chunks' excess, sorting the
replicates and searching the joint level again for every chunk.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

MAX_ENTRIES = 512  # 2,000 replicates of 8 bytes each: at most ~8 MB

K = TypeVar("K")
V = TypeVar("V")


class Bounded(dict[K, V]):
    """A dict that keeps the ``max_entries`` latest insertions (the oldest is dropped first)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        super().__init__()
        self.max_entries = max_entries

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self:
            while len(self) >= self.max_entries:
                del self[next(iter(self))]
        super().__setitem__(key, value)


class NoiseCache(Bounded[tuple[object, ...], NDArray[np.float64]]):
    """A ``noise_cache`` for ``column_drift`` that keeps the ``max_entries`` latest samples
    (the oldest inserted is dropped first), and as many finished calibrations
    (``calibrations``). One evaluator thread uses it."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__(max_entries)
        self.calibrations: Bounded[tuple[object, ...], Any] = Bounded(max_entries)
