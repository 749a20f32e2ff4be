"""Is a reference's row order informative? A test of exchangeability on consecutive blocks.

The calibrated drift decision (:mod:`watchkeeper.stats.calibration`) simulates the no-drift
statistic as if rows were independent draws. Real references often are not: a census extract
sorted by state, a series whose values wander (AR), a seasonal log. Then a contiguous window
varies more than i.i.d. rows would, and the i.i.d. threshold alarms too often. This module
tests, per column, whether the reference's row order carries such structure:

1. Each row's value is put in a cell (the column's frozen bins, or its categories); the rows,
   in their order, are cut into ``B`` consecutive blocks of about ``BLOCK_ROWS`` rows (at most
   ``MAX_BLOCKS``), giving a ``B × C`` table of counts.
2. If rows were exchangeable (i.i.d. rows are), which block a value falls in would tell
   nothing about it. Two classical tests of that, each exact in law as the blocks grow:

   * **Kruskal–Wallis** (ordered cells, numeric columns): do the blocks' mean ranks differ
     more than chance allows? ``H`` on the binned values (mid-ranks per cell, tie-corrected)
     against χ² with ``B − 1`` degrees of freedom. Its power is on location wobble
     (autocorrelation, clusters with their own level, seasons).
   * **Pearson's χ² of homogeneity** (every column): the blocks merged into at most
     ``CHI2_BLOCKS`` groups and adjacent cells pooled until each expects at least
     ``MIN_EXPECTED`` values per group, against χ² with ``(G − 1)(C' − 1)`` degrees of freedom.
     Its power is on any change of shape.

   A numeric column gets both, combined by Bonferroni (``p = min(1, 2·min(p_KW, p_χ²))``);
   a categorical column gets the χ² test.
3. The rows are called dependent when ``p < alpha`` (``DEPENDENCE_ALPHA`` = 0.001 by
   default: on i.i.d. data the test fires on one column in a thousand, and then only the
   calibration's source changes, not its level on average).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> iid = rng.integers(0, 20, size=5000)
>>> row_dependence(iid, 20, ordered=True).dependent
False
>>> clustered = np.sort(iid)                   # the same values, sorted: row order is informative
>>> row_dependence(clustered, 20, ordered=True).dependent
True

References
----------
W. H. Kruskal, W. A. Wallis (1952). Use of ranks in one-criterion variance analysis. Journal of
the American Statistical Association 47(260), 583-621.
K. Pearson (1900), see :mod:`watchkeeper.stats.distances`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

__all__ = ["DEPENDENCE_ALPHA", "RowDependence", "block_table", "row_dependence"]

DEPENDENCE_ALPHA = 0.001
BLOCK_ROWS = 50
MAX_BLOCKS = 200
MIN_BLOCKS = 8
CHI2_BLOCKS = 20
MIN_EXPECTED = 10
TESTS = "kruskal+chisquare+serial"


@dataclass(frozen=True)
class RowDependence:
    """The result of the row-order test of one column."""

    p_value: float | None  # None when there were too few values to test
    test: str  # TESTS (ordered cells), "chisquare" (categories), or "none"
    blocks: int
    alpha: float
    kruskal_p: float | None = None
    chisquare_p: float | None = None
    serial_p: float | None = None

    @property
    def dependent(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "dependent": self.dependent,
            "p_value": self.p_value,
            "test": self.test,
            "blocks": self.blocks,
            "alpha": self.alpha,
            "kruskal_p": self.kruskal_p,
            "chisquare_p": self.chisquare_p,
            "serial_p": self.serial_p,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowDependence:
        return cls(
            p_value=data["p_value"],
            test=str(data["test"]),
            blocks=int(data["blocks"]),
            alpha=float(data["alpha"]),
            kruskal_p=data.get("kruskal_p"),
            chisquare_p=data.get("chisquare_p"),
            serial_p=data.get("serial_p"),
        )

    def describe(self) -> str:
        """One line for a report: the test, its p-value and the blocks."""
        if self.p_value is None:
            return "too few values to test the row order"
        return f"{self.test} p={self.p_value:.2g} over {self.blocks} blocks of rows"


def block_table(cells: NDArray[np.integer[Any]], n_cells: int, blocks: int) -> NDArray[np.int64]:
    """``blocks × n_cells`` counts: row ``i`` (of ``len(cells)``) in block ``i·blocks // n``;
    a negative cell (a missing value) is left out."""
    n = cells.size
    flat = (np.arange(n, dtype=np.int64) * blocks) // max(n, 1)
    flat *= n_cells
    flat += cells
    keep = cells >= 0
    if not keep.all():
        flat = flat[keep]
    return np.bincount(flat, minlength=blocks * n_cells).reshape(blocks, n_cells)


def kruskal_binned(table: NDArray[np.int64]) -> tuple[float, int]:
    """Kruskal–Wallis ``H`` (tie-corrected) of the blocks (rows of ``table``) on ordered cells
    (its columns), and its degrees of freedom; equal to ``scipy.stats.kruskal`` on the cell
    indices of each block."""
    table = table[table.sum(axis=1) > 0]
    totals = table.sum(axis=0).astype(np.float64)
    n = float(totals.sum())
    ranks = np.cumsum(totals) - totals + (totals + 1) / 2  # mid-ranks of each cell
    sizes = table.sum(axis=1).astype(np.float64)
    rank_sums = (table * ranks).sum(axis=1)
    h = 12.0 / (n * (n + 1)) * float((rank_sums**2 / sizes).sum()) - 3.0 * (n + 1)
    ties = 1.0 - float((totals**3 - totals).sum()) / (n**3 - n) if n > 1 else 0.0
    return (h / ties if ties > 0 else 0.0), len(table) - 1


def _pool(totals: NDArray[np.int64], need: float) -> NDArray[np.intp]:
    """Starts of groups of adjacent cells, each with a total of at least ``need`` (the last
    short group joins the one before)."""
    starts, running = [0], 0
    for i, t in enumerate(totals):
        running += int(t)
        if running >= need and i + 1 < totals.size:
            starts.append(i + 1)
            running = 0
    if running < need and len(starts) > 1:
        starts.pop()
    return np.asarray(starts, dtype=np.intp)


def chisquare_homogeneity(table: NDArray[np.int64]) -> tuple[float, int]:
    """Pearson's χ² of homogeneity of the blocks, merged into at most ``CHI2_BLOCKS`` groups of
    consecutive blocks and with adjacent cells pooled to ``MIN_EXPECTED`` values per group;
    and its degrees of freedom (0 when there is nothing to test)."""
    groups = min(CHI2_BLOCKS, len(table))
    bounds = (np.arange(groups) * len(table)) // groups
    merged = np.add.reduceat(table, bounds, axis=0)
    merged = merged[merged.sum(axis=1) > 0]
    totals = merged.sum(axis=0)
    merged = merged[:, totals > 0]
    if len(merged) < 2 or merged.shape[1] < 2:
        return 0.0, 0
    cells = np.add.reduceat(merged, _pool(merged.sum(axis=0), MIN_EXPECTED * len(merged)), axis=1)
    if cells.shape[1] < 2:
        return 0.0, 0
    expected = np.outer(cells.sum(axis=1), cells.sum(axis=0)) / cells.sum()
    chi2 = float(((cells - expected) ** 2 / expected).sum())
    return chi2, (len(cells) - 1) * (cells.shape[1] - 1)


def serial_correlation(cells: NDArray[np.integer[Any]], n_cells: int) -> tuple[float, float]:
    """The lag-1 serial correlation of the rows' mid-ranks (ordered cells) and its z-score
    under exchangeability (Wald and Wolfowitz's permutation law: mean ``-1/(n-1)``, variance
    about ``1/n``)."""
    totals = np.bincount(cells, minlength=n_cells).astype(np.float64)
    ranks = np.cumsum(totals) - totals + (totals + 1) / 2
    a = ranks[cells]
    a = a - a.mean()
    ss = float((a * a).sum())  # elementwise, not a BLAS call: no thread start-up per column
    n = a.size
    if ss <= 0 or n < 3:
        return 0.0, 0.0
    r1 = float((a[1:] * a[:-1]).sum()) / ss
    return r1, (r1 + 1.0 / (n - 1)) * np.sqrt(n)


def row_dependence(
    cells: NDArray[np.integer[Any]],
    n_cells: int,
    *,
    ordered: bool,
    alpha: float = DEPENDENCE_ALPHA,
) -> RowDependence:
    """Test whether one column's values depend on their row position (see the module doc).

    ``cells``: each row's cell, in row order (negative for a missing value); ``ordered``: the
    cells are ordered (a numeric column's bins), so Kruskal–Wallis applies too."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    cells = np.asarray(cells)
    valid = int((cells >= 0).sum())
    blocks = min(MAX_BLOCKS, valid // BLOCK_ROWS)
    if blocks < MIN_BLOCKS:
        return RowDependence(None, "none", blocks, alpha)
    table = block_table(cells[cells >= 0], n_cells, blocks)
    chi2, dof = chisquare_homogeneity(table)
    p_chi2 = float(sps.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    if not ordered:
        return RowDependence(p_chi2, "chisquare", blocks, alpha, chisquare_p=p_chi2)
    h, df = kruskal_binned(table)
    p_kw = float(sps.chi2.sf(h, df)) if df > 0 else 1.0
    _, z = serial_correlation(cells[cells >= 0], n_cells)
    p_lag = float(sps.norm.sf(z))
    p = min(1.0, 3.0 * min(p_kw, p_chi2, p_lag))
    return RowDependence(
        p, TESTS, blocks, alpha, kruskal_p=p_kw, chisquare_p=p_chi2, serial_p=p_lag
    )
