"""compare()'s output equals that of a straightforward implementation, part by part.

The profiling path is tuned for speed (threads, a sort per numeric column, counting
dictionary codes); none of that may change a result. Here every exact part of the report
(edges, counts, extremes, missing and non-finite counts, categories, unseen values) is
recomputed column by column with plain numpy and ``collections.Counter`` on a seeded data
set with nulls, infinities, ties, unseen categories and reference chunks, and the drift
figures are those ``column_drift`` gives on profiles built from these counts: the same to
the last bit. Mean and standard deviation, sums in floating point, agree to rounding.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.report import compare
from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.drift import column_drift
from watchkeeper.stats.numeric import (
    DEFAULT_BINS,
    DISCRETE_MIN_ROWS,
    NumericProfile,
    quantile_edges,
)

CHUNKS = 4


def _frame(rng: np.random.Generator, n: int, shift: float) -> pa.Table:
    normal = rng.normal(shift, 1.0, n)
    normal[rng.integers(0, n, 40)] = np.nan
    normal[rng.integers(0, n, 5)] = np.inf
    normal[rng.integers(0, n, 5)] = -np.inf
    ints = rng.integers(0, 50, n)
    ints_null = pa.array(rng.integers(-1000, 1000, n), mask=rng.random(n) < 0.02)
    letters = np.array(list("abcdefghij"))
    plain = letters[np.minimum(rng.geometric(0.3 + shift / 10, n) - 1, 9)].astype(object)
    plain[rng.random(n) < 0.01] = None
    dictionary = pa.array(letters[rng.integers(0, 4 + int(shift > 0), n)]).dictionary_encode()
    return pa.table(
        {
            "normal": normal,
            "lognormal": rng.lognormal(shift, 0.75, n),
            "ints": ints,
            "ints_null": ints_null,
            "plain": pa.array(plain, type=pa.string()),
            "dictionary": dictionary,
        }
    )


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


def _numeric(values: np.ndarray, edges: np.ndarray) -> NumericProfile:
    finite = values[np.isfinite(values)]
    counts = [int((finite < edges[0]).sum())]
    for i in range(1, len(edges)):
        upper = finite <= edges[i] if i == len(edges) - 1 else finite < edges[i]
        counts.append(int(((finite >= edges[i - 1]) & upper).sum()))
    counts.append(int((finite > edges[-1]).sum()))
    return NumericProfile(
        edges=edges,
        counts=np.array(counts, dtype=np.int64),
        sums=np.zeros(len(counts)),
        count=int(finite.size),
        nulls=int(np.isnan(values).sum()),
        non_finite=int(np.isinf(values).sum()),
        minimum=float(finite.min()),
        maximum=float(finite.max()),
        mean=float(finite.mean()),
        m2=float(((finite - finite.mean()) ** 2).sum()),
        kll=None,
    )


def _categorical(values: list[str | None], categories: tuple[str, ...]) -> CategoricalProfile:
    seen = Counter(v for v in values if v is not None)
    counts = [seen.get(c, 0) for c in categories]
    extra = {k: n for k, n in seen.items() if k not in categories}
    return CategoricalProfile(
        categories=categories,
        counts=np.array([*counts, sum(extra.values())], dtype=np.int64),
        count=sum(seen.values()),
        nulls=values.count(None),
        extra=extra,
    )


def _profiles(ref: pa.Table, cur: pa.Table, name: str) -> tuple[object, object, list[object]]:
    bounds = np.linspace(0, ref.num_rows, CHUNKS + 1).astype(int)
    parts = [ref.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    if pa.types.is_floating(ref.schema.field(name).type) or pa.types.is_integer(
        ref.schema.field(name).type
    ):
        r = _floats(ref.column(name))
        finite = r[np.isfinite(r)]
        values = np.unique(finite)
        if (
            values.size >= 2
            and 2 * values.size - 1 <= DEFAULT_BINS
            and (finite.size >= DISCRETE_MIN_ROWS * values.size)
        ):  # a discrete reference: a cell per value, another per gap (docs/statistics.md)
            edges = np.array([e for v in values for e in (v, np.nextafter(v, np.inf))])
        else:
            edges = quantile_edges(np.sort(finite), DEFAULT_BINS)
        return (
            _numeric(r, edges),
            _numeric(_floats(cur.column(name)), edges),
            [_numeric(_floats(p.column(name)), edges) for p in parts],
        )
    r_values = ref.column(name).cast(pa.string()).to_pylist()
    seen = Counter(v for v in r_values if v is not None)
    categories = tuple(sorted(seen, key=lambda k: (-seen[k], k))[:200])
    return (
        _categorical(r_values, categories),
        _categorical(cur.column(name).cast(pa.string()).to_pylist(), categories),
        [_categorical(p.column(name).cast(pa.string()).to_pylist(), categories) for p in parts],
    )


@pytest.mark.parametrize("rows", [2_000, 150_000])  # one thread, and the threaded path
def test_compare_equals_a_straightforward_implementation(rows: int) -> None:
    rng = np.random.default_rng(12)
    ref, cur = _frame(rng, rows, 0.0), _frame(rng, rows // 2, 0.05)
    report = compare(ref, cur, reference_chunks=CHUNKS)
    assert set(report.drift) == set(ref.column_names)
    for name, got in report.drift.items():
        r, c, chunks = _profiles(ref, cur, name)
        want = column_drift(
            name,
            r,
            c,
            chunks=chunks,
            seed=0,
            noise_cache={},  # type: ignore[arg-type]
        )
        # the report adds what the calibration was simulated from; the figures are column_drift's
        assert got.calibration_basis == "contiguous reference chunks", name
        got.calibration_basis = got.calibration_reason = None
        assert got.to_dict() == want.to_dict(), name
        q_ref, q_cur = report.quality[name]["reference"], report.quality[name]["current"]
        for q, p in ((q_ref, r), (q_cur, c)):
            assert q["missing"] == p.nulls and q["rows"] == p.rows  # type: ignore[attr-defined]
            if isinstance(p, NumericProfile):
                assert (q["min"], q["max"], q["non_finite"]) == (p.minimum, p.maximum, p.non_finite)
                assert q["out_of_range"] == p.counts[0] + p.counts[-1]
                assert q["mean"] == pytest.approx(p.mean, rel=1e-12, abs=1e-12)
                assert q["std"] == pytest.approx(p.std, rel=1e-12)
            else:
                assert isinstance(p, CategoricalProfile)
                assert q["unseen"] == p.unseen
                assert q["top_unseen"] == [v for v, _ in p.top_extra(5)]
    drifted = set(report.drifted_columns)
    if rows > 10_000:  # the shifted columns are found, the others not
        assert {"normal", "lognormal", "plain", "dictionary"} <= drifted
        assert "ints" not in drifted and "ints_null" not in drifted
