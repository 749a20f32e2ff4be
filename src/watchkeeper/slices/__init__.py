"""Failing slices: where the model does worse than on the rest of the current data.

``compare(..., target=, prediction=)`` fills ``report.failing_slices`` (``docs/slices.md``).
The slices are the cells of each feature and of each pair of features, on the reference's
frozen profile bins, coarsened:

* numeric: the frozen bins merged into ``ranges`` (5) ranges of nearly equal reference mass,
  open at both ends (values past the reference's range join the first or last one);
* categorical: the reference's categories holding at least ``min_share`` of its rows, at
  most ``categories`` (20) of them; the others, and values unseen in the reference, are
  grouped as ``(other)``;
* missing values are a cell of their own.

A cell is tested when it holds at least ``min_rows`` (30) labelled rows and ``min_share``
(1 %) of them, and so does the rest. Each is tested one-sided against the rest of the rows
(:mod:`watchkeeper.stats.slices`: Fisher's exact test of the error rate, Welch's t-test of
the mean absolute error), the p-values adjusted by Holm's method over every cell tested, and
a cell is significant where the adjusted p-value is at most the report's
``false_alarm_rate``. Of the significant cells, a pair cell that is not worse than the rest
of a significant single-feature cell it lies in adds nothing to it and is left out; a single
cell is left out when a reported pair cell inside it explains it: once the pair's rows are
taken away, the rest of the cell is no longer worse than the rows outside it. Both checks are
one-sided tests at the level of a discovery (``false_alarm_rate`` / cells tested, Bonferroni),
so a cell stays only when it is a finding in its own right; leaving cells out never adds a
false discovery. The rest are ranked by impact, rows × gap (the excess errors,
or excess absolute error, they carry).

Examples
--------
>>> import numpy as np, pyarrow as pa, watchkeeper
>>> rng = np.random.default_rng(0)
>>> n = 6000
>>> country = rng.choice(["DE", "FR", "US"], n)
>>> income = rng.uniform(0, 100_000, n)
>>> y = rng.integers(0, 2, n)
>>> wrong = rng.random(n) < np.where((country == "DE") & (income >= 80_000), 0.4, 0.1)
>>> t = pa.table({"country": country, "income": income, "y": y, "p": np.where(wrong, 1 - y, y)})
>>> found = watchkeeper.compare(t, t, target="y", prediction="p").failing_slices
>>> found.slices[0].description
'country=DE, income ≥ 80k'
"""

from watchkeeper.slices.find import failing_slices, report_slices
from watchkeeper.slices.result import DEFAULTS, FailingSlices, Slice, slice_options

__all__ = ["DEFAULTS", "FailingSlices", "Slice", "failing_slices", "report_slices", "slice_options"]
