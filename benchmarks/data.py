"""Seeded benchmark data: a reference and a current frame with known, modest drift.

Each frame has ``rows`` rows (1,000,000 by default) and 25 columns: 20 numeric and
5 categorical. The reference and the current frame are independent draws; the
current frame's draw differs from the reference's in exactly six columns:

==============  ===========================================  =========================
column          distribution (reference)                     shift in ``current``
==============  ===========================================  =========================
normal_0        N(0, 1)                                      mean + 0.02 sigma
normal_1        N(10, 2)                                     scale x 1.03 (same mean)
lognormal_0     LogNormal(0, 0.75)                           tail: the top 3 % x 1.5
uniform_0       U(0, 1)                                      range shifted by + 0.01
cat_skew_8      8 categories, Zipf-like                      the 2nd and 3rd category
                                                             swap frequencies (-/+ 3 pts)
cat_new_12      12 categories, Zipf-like                     new category at 1 %
==============  ===========================================  =========================

All other columns are drawn from identical distributions in both frames, so any
flag on them is a false alarm. The shifts are chosen to be operationally small
(the two-sample Kolmogorov-Smirnov distance of each numeric shift is ~0.006-0.03)
yet far beyond sampling noise at one million rows (the KS critical value at
alpha = 0.05 is ~0.0019), so a sound test at that size should find every one.

Unshifted columns cover the shapes monitoring sees in practice: normals, lognormals,
uniforms, bimodal mixtures, heavy-tailed Student t (df=3 and 5), wide-range int64
columns (many tied values) and skewed categoricals with 3 to 30 categories.

Usage: ``python benchmarks/data.py --rows 1000000 --seed 0`` writes
``benchmarks/.cache/rows<rows>_seed<seed>/{reference,current}.parquet``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
DATA_VERSION = 1  # bump when the generator changes so stale caches are not reused

Gen = np.random.Generator
NumericSampler = Callable[[Gen, int], np.ndarray]


@dataclass(frozen=True)
class Shift:
    """A documented drift applied to one column of the current frame."""

    column: str
    description: str


SHIFTS: tuple[Shift, ...] = (
    Shift("normal_0", "normal: mean +0.02 sigma"),
    Shift("normal_1", "normal: scale x1.03, same mean"),
    Shift("lognormal_0", "lognormal: top 3% of values x1.5 (tail change)"),
    Shift("uniform_0", "uniform: range U(0,1) -> U(0.01,1.01)"),
    Shift("cat_skew_8", "categorical: 2nd/3rd category swap frequencies (-/+3 pts)"),
    Shift("cat_new_12", "categorical: new category at 1%"),
)
SHIFTED_COLUMNS: tuple[str, ...] = tuple(s.column for s in SHIFTS)


def _bimodal(loc_a: float, loc_b: float, weight_a: float) -> NumericSampler:
    def sample(rng: Gen, n: int) -> np.ndarray:
        pick = rng.random(n) < weight_a
        return np.where(pick, rng.normal(loc_a, 1.0, n), rng.normal(loc_b, 0.7, n))

    return sample


# Reference distributions of the 20 numeric columns.
NUMERIC: dict[str, NumericSampler] = {
    "normal_0": lambda rng, n: rng.normal(0.0, 1.0, n),
    "normal_1": lambda rng, n: rng.normal(10.0, 2.0, n),
    "normal_2": lambda rng, n: rng.normal(-50.0, 15.0, n),
    "normal_3": lambda rng, n: rng.normal(1e6, 1e4, n),
    "lognormal_0": lambda rng, n: rng.lognormal(0.0, 0.75, n),
    "lognormal_1": lambda rng, n: rng.lognormal(3.0, 1.2, n),
    "lognormal_2": lambda rng, n: rng.lognormal(-1.0, 0.4, n),
    "uniform_0": lambda rng, n: rng.uniform(0.0, 1.0, n),
    "uniform_1": lambda rng, n: rng.uniform(-100.0, 100.0, n),
    "uniform_2": lambda rng, n: rng.uniform(5.0, 6.0, n),
    "bimodal_0": _bimodal(-2.0, 2.0, 0.5),
    "bimodal_1": _bimodal(0.0, 6.0, 0.8),
    "bimodal_2": _bimodal(10.0, 13.0, 0.3),
    "student_t_0": lambda rng, n: rng.standard_t(3, n),
    "student_t_1": lambda rng, n: 5.0 + 2.0 * rng.standard_t(3, n),
    "student_t_2": lambda rng, n: rng.standard_t(5, n),
    "int_wide_0": lambda rng, n: rng.integers(0, 100_000, n),
    "int_wide_1": lambda rng, n: rng.poisson(300.0, n),
    "int_wide_2": lambda rng, n: rng.negative_binomial(5, 0.01, n),
    "int_wide_3": lambda rng, n: np.round(rng.lognormal(6.0, 1.0, n)).astype(np.int64),
}

# The 5 categorical columns: number of categories and Zipf exponent of their frequencies.
CATEGORICAL: dict[str, tuple[int, float]] = {
    "cat_skew_8": (8, 1.0),
    "cat_new_12": (12, 1.1),
    "cat_3": (3, 0.7),
    "cat_20": (20, 1.3),
    "cat_30": (30, 1.0),
}
NEW_CATEGORY = "NEW"


def column_names() -> list[str]:
    return [*NUMERIC, *CATEGORICAL]


def numeric_columns() -> list[str]:
    return list(NUMERIC)


def categorical_columns() -> list[str]:
    return list(CATEGORICAL)


def _zipf_probs(k: int, exponent: float) -> np.ndarray:
    weights: np.ndarray = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** exponent
    return np.asarray(weights / weights.sum())


def _categories(name: str, k: int) -> list[str]:
    return [f"{name}_v{i:02d}" for i in range(k)]


def _shift_numeric(name: str, values: np.ndarray) -> np.ndarray:
    if name == "normal_0":
        return values + 0.02  # sigma = 1
    if name == "normal_1":
        return 10.0 + (values - 10.0) * 1.03
    if name == "lognormal_0":
        cut = np.quantile(values, 0.97)
        return np.where(values > cut, values * 1.5, values)
    if name == "uniform_0":
        return values + 0.01
    return values


def _categorical(name: str, n: int, rng: Gen, current: bool) -> pa.DictionaryArray:
    k, exponent = CATEGORICAL[name]
    probs = _zipf_probs(k, exponent)
    labels = _categories(name, k)
    if current and name == "cat_skew_8":
        # Move 3 percentage points from the 2nd most frequent category to the 3rd.
        probs = probs.copy()
        probs[1] -= 0.03
        probs[2] += 0.03
    if current and name == "cat_new_12":
        probs = np.append(probs * 0.99, 0.01)
        labels = [*labels, NEW_CATEGORY]
    codes = rng.choice(len(probs), size=n, p=probs).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels))


def make_frame(rows: int, seed: int, current: bool) -> pa.Table:
    """One frame; ``current=True`` applies the documented shifts."""
    # Independent streams for reference and current, derived from one seed.
    rng = np.random.default_rng([seed, int(current)])
    columns: dict[str, pa.Array] = {}
    for name, sample in NUMERIC.items():
        values = sample(rng, rows)
        if current:
            values = _shift_numeric(name, values)
        columns[name] = pa.array(values)  # float64, or int64 for int_wide_*
    for name in CATEGORICAL:
        columns[name] = _categorical(name, rows, rng, current)
    return pa.table(columns)


def frame_dir(rows: int, seed: int) -> Path:
    return CACHE_DIR / f"v{DATA_VERSION}_rows{rows}_seed{seed}"


def ensure_data(rows: int, seed: int) -> tuple[Path, Path]:
    """Write (or reuse) the cached reference/current parquet files; return their paths."""
    out = frame_dir(rows, seed)
    ref, cur = out / "reference.parquet", out / "current.parquet"
    if ref.exists() and cur.exists():
        return ref, cur
    out.mkdir(parents=True, exist_ok=True)
    for path, current in ((ref, False), (cur, True)):
        tmp = path.with_suffix(".tmp")
        pq.write_table(make_frame(rows, seed, current), tmp, compression="zstd")
        tmp.replace(path)
    return ref, cur


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ref, cur = ensure_data(args.rows, args.seed)
    print(ref)
    print(cur)


if __name__ == "__main__":
    main()
