"""Seeded references whose rows are not independent, and a current window of the same process.

Each generator returns ``(reference, current)``: the reference is ``n`` consecutive rows of a
stationary process in row order, with no timestamp column; the current window is ``m`` more
rows of the same process (so any drift flagged on it is a false alarm). Every frame has
``COLUMNS`` independent numeric columns ``x0..`` and, where said, categorical ones ``c0..``.

* ``ar1``: each column an AR(1) series ``x_t = phi x_(t-1) + e_t`` (stationary start).
* ``clustered``: rows grouped in clusters (a census extract sorted by state): cluster sizes
  are lognormal around ``cluster_rows``, each cluster shifts the numeric columns by its own
  ``N(0, spread²)`` level and draws its categories from its own Dirichlet around common
  shares; the current window is a contiguous slice of a fresh sequence of clusters.
* ``seasonal``: a daily series over ``n / 365`` years, ``sin(2 pi t / 365 + phase)`` plus
  AR(1) noise; the current window is the ``m`` days after the reference.
* ``iid``: independent rows, the control.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.signal import lfilter

COLUMNS = 4
CATEGORIES = np.array(list("abcdefgh"))
SHARES = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])


def _ar1(rng: np.random.Generator, rows: int, phi: float) -> np.ndarray:
    e = rng.normal(size=rows)
    e[0] /= np.sqrt(1 - phi * phi)  # stationary start
    out: np.ndarray = lfilter([1.0], [1.0, -phi], e)
    return out


def _split(columns: dict[str, np.ndarray], n: int) -> tuple[pa.Table, pa.Table]:
    ref = pa.table({k: v[:n] for k, v in columns.items()})
    cur = pa.table({k: v[n:] for k, v in columns.items()})
    return ref, cur


def ar1(seed: int, n: int = 20_000, m: int = 1_000, phi: float = 0.5) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    return _split({f"x{i}": _ar1(rng, n + m, phi) for i in range(COLUMNS)}, n)


def _clusters(
    rng: np.random.Generator, rows: int, cluster_rows: int, spread: float
) -> dict[str, np.ndarray]:
    sizes: list[int] = []
    while sum(sizes) < rows:
        sizes.append(max(1, int(rng.lognormal(np.log(cluster_rows), 0.5))))
    k = len(sizes)
    out: dict[str, np.ndarray] = {}
    for i in range(COLUMNS):
        level = np.repeat(rng.normal(0.0, spread, k), sizes)[:rows]
        out[f"x{i}"] = level + rng.normal(size=rows)
    shares = rng.dirichlet(SHARES * 60, size=k)  # each cluster's own category shares
    cum = np.repeat(np.cumsum(shares, axis=1), sizes, axis=0)[:rows]
    codes = (rng.random((rows, 1)) > cum).sum(axis=1).clip(0, len(CATEGORIES) - 1)
    out["c0"] = CATEGORIES[codes]
    return out


def clustered(
    seed: int, n: int = 20_000, m: int = 1_000, cluster_rows: int = 400, spread: float = 0.25
) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ref = pa.table(_clusters(rng, n, cluster_rows, spread))
    # the current window: a contiguous slice of another extract of the same population
    fresh = pa.table(_clusters(rng, 4 * m, cluster_rows, spread))
    start = int(rng.integers(0, 3 * m))
    return ref, fresh.slice(start, m)


def seasonal(seed: int, n: int = 3_650, m: int = 90, phi: float = 0.6) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    t = np.arange(n + m) + rng.integers(0, 365)
    cols = {
        f"x{i}": np.sin(2 * np.pi * t / 365 + rng.uniform(0, 2 * np.pi))
        + 0.7 * _ar1(rng, n + m, phi)
        for i in range(COLUMNS)
    }
    return _split(cols, n)


def iid(
    seed: int, n: int = 20_000, m: int = 1_000, shift: float = 0.0
) -> tuple[pa.Table, pa.Table]:
    """Independent rows; ``shift`` (in standard deviations) moves the current window's mean."""
    rng = np.random.default_rng(seed)
    ref = {f"x{i}": rng.normal(size=n) for i in range(COLUMNS)}
    cur = {f"x{i}": rng.normal(shift, 1.0, size=m) for i in range(COLUMNS)}
    ref["c0"] = CATEGORIES[rng.choice(len(SHARES), n, p=SHARES)]
    cur["c0"] = CATEGORIES[rng.choice(len(SHARES), m, p=SHARES)]
    return pa.table(ref), pa.table(cur)
