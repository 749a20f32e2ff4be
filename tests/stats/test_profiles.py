"""Profiles merge associatively: profile(a) ⊕ profile(b) equals profile(a ∪ b) on every exact part."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.profiles import profile, profile_reference, profile_table
from watchkeeper.schema import infer_schema
from watchkeeper.stats.categorical import CategoricalProfile, top_categories, value_counts
from watchkeeper.stats.numeric import NumericProfile, quantile_edges

specials = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0])
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
values = st.lists(st.one_of(finite, specials), min_size=0, max_size=300)
EDGES = quantile_edges(np.sort(np.random.default_rng(0).normal(0, 1e3, 1000)), 20)


def _assert_numeric_equal(a: NumericProfile, b: NumericProfile) -> None:
    assert np.array_equal(a.counts, b.counts)
    assert np.allclose(a.sums, b.sums, rtol=1e-9, atol=1e-3)
    assert (a.count, a.nulls, a.type_errors, a.non_finite) == (
        b.count,
        b.nulls,
        b.type_errors,
        b.non_finite,
    )
    assert np.array_equal([a.minimum, a.maximum], [b.minimum, b.maximum], equal_nan=True)
    assert a.kll.n == b.kll.n
    if a.count:
        assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-6)
        assert a.m2 == pytest.approx(b.m2, rel=1e-7, abs=1e-3)


@settings(max_examples=150, deadline=None)
@given(values, values, values)
def test_numeric_merge_equals_unmerged_and_is_associative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    pa_, pb, pc_ = (NumericProfile.build(np.array(x, dtype=float), EDGES) for x in (a, b, c))
    whole = NumericProfile.build(np.array(a + b + c, dtype=float), EDGES)
    _assert_numeric_equal(pa_.merge(pb).merge(pc_), whole)
    _assert_numeric_equal(pa_.merge(pb.merge(pc_)), whole)
    _assert_numeric_equal(pc_.merge(pa_).merge(pb), whole)


def test_numeric_profile_against_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 3.0, 50_000)
    x[::97] = np.nan
    x[5] = np.inf
    p = NumericProfile.build(x, quantile_edges(np.sort(x[np.isfinite(x)]), 50), type_errors=4)
    fin = x[np.isfinite(x)]
    assert p.count == fin.size and p.nulls == int(np.isnan(x).sum()) and p.non_finite == 1
    assert p.rows == x.size + 4
    assert p.mean == pytest.approx(fin.mean(), rel=1e-12)
    assert p.variance == pytest.approx(fin.var(ddof=1), rel=1e-10)
    assert (p.minimum, p.maximum) == (fin.min(), fin.max())
    assert p.counts[0] == 0 and p.counts[-1] == 0 and p.counts.sum() == fin.size
    eps = p.kll.normalized_rank_error(False)
    for q in (0.01, 0.25, 0.5, 0.9, 0.99):  # KLL within its documented rank error
        rank = (fin <= p.quantile(q)).mean()
        assert abs(rank - q) <= eps


def test_histogram_layout_and_constant_reference() -> None:
    edges = quantile_edges(np.array([5.0, 5.0, 5.0]), 10)
    assert edges.tolist() == [5.0, 5.0]
    p = NumericProfile.build(np.array([4.0, 5.0, 5.0, 6.0]), edges)
    assert p.counts.tolist() == [1, 2, 1]
    empty = NumericProfile.build(np.array([np.nan]), quantile_edges(np.array([]), 10))
    assert empty.counts.tolist() == [0] and empty.nulls == 1


def test_numeric_serialisation_round_trip() -> None:
    x = np.random.default_rng(1).normal(size=1000)
    p = NumericProfile.build(x, quantile_edges(np.sort(x), 10))
    q = NumericProfile.from_dict(p.to_dict())
    _assert_numeric_equal(p, q)
    assert q.quantile(0.5) == p.quantile(0.5)


cats = st.lists(
    st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é", "<x>"]), st.text(max_size=3)),
    max_size=200,
)


def _assert_categorical_equal(a: CategoricalProfile, b: CategoricalProfile) -> None:
    assert a.counts.tolist() == b.counts.tolist()
    assert (a.count, a.nulls) == (b.count, b.nulls)
    assert a.extra == b.extra
    assert a.distinct_estimate == pytest.approx(b.distinct_estimate, rel=0.05)


@settings(max_examples=150, deadline=None)
@given(cats, cats, cats)
def test_categorical_merge_equals_unmerged(
    a: list[str | None], b: list[str | None], c: list[str | None]
) -> None:
    categories = ("a", "b", "c")
    pa_, pb, pc_ = (
        CategoricalProfile.build(pa.array(x, pa.string()), categories, max_extra=50)
        for x in (a, b, c)
    )
    whole = CategoricalProfile.build(pa.array(a + b + c, pa.string()), categories, max_extra=50)
    for merged in (pa_.merge(pb).merge(pc_), pa_.merge(pb.merge(pc_)), pc_.merge(pb).merge(pa_)):
        if whole.extra is not None and merged.extra is not None:
            _assert_categorical_equal(merged, whole)
        else:  # past the cap both sides hold sketches: counts stay exact
            assert merged.counts.tolist() == whole.counts.tolist()


def test_categorical_cap_moves_extra_values_into_a_sketch() -> None:
    values = pa.array([f"v{i % 40}" for i in range(400)] + ["a"] * 10)
    p = CategoricalProfile.build(values, ("a",), max_extra=10)
    assert p.extra is None and p.counts.tolist() == [10, 400]
    top = dict(p.top_extra(40))
    assert top and all(abs(v - 10) <= p.extra_sketch.epsilon * 400 + 1 for v in top.values())
    assert abs(p.distinct_estimate - 41) <= 2
    q = CategoricalProfile.from_dict(p.to_dict())
    assert q.counts.tolist() == p.counts.tolist() and q.top_extra(3) == p.top_extra(3)


def test_top_categories_by_frequency_then_value() -> None:
    assert top_categories(pa.array(["b", "a", "b", "c", "a", None]), 2) == ("a", "b")


def test_profile_without_quantile_sketch() -> None:
    x = np.random.default_rng(4).gamma(2.0, 2.0, 20_000)
    edges = quantile_edges(np.sort(x), 100)
    with_sketch = NumericProfile.build(x, edges)
    bare = NumericProfile.build(x, edges, kll_k=0)
    assert bare.kll is None and np.array_equal(bare.counts, with_sketch.counts)
    widths = np.diff(edges).max()
    for q in (0.1, 0.5, 0.9):  # from the histogram: within one cell of the exact quantile
        assert abs(bare.quantile(q) - np.quantile(x, q)) <= widths
    assert with_sketch.merge(bare).kll is None
    assert NumericProfile.from_dict(bare.to_dict()).kll is None


@settings(max_examples=60, deadline=None)
@given(st.lists(cats, min_size=1, max_size=4))
def test_dictionary_columns_count_as_their_values(parts: list[list[str | None]]) -> None:
    """Counting a dictionary's codes gives what counting the decoded strings gives, over
    chunks with their own dictionaries."""
    encoded = pa.chunked_array([pa.array(p, pa.string()).dictionary_encode() for p in parts])
    plain = pa.chunked_array([pa.array(p, pa.string()) for p in parts])
    (k1, n1, nulls1), (k2, n2, nulls2) = value_counts(encoded), value_counts(plain)
    assert dict(zip(k1, n1.tolist(), strict=True)) == dict(zip(k2, n2.tolist(), strict=True))
    assert nulls1 == nulls2 and len(k1) == len(set(k1))


def test_a_value_twice_in_a_dictionary_is_one_category() -> None:
    twice = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 1, None, 2], pa.int8()), pa.array(["y", "q", "y"])
    )
    assert top_categories(twice, 10) == ("q", "y")
    assert CategoricalProfile.build(twice, ("q", "y")).counts.tolist() == [2, 2, 0]


def test_on_profile_gets_each_column_in_order_on_the_calling_thread() -> None:
    rng = np.random.default_rng(3)
    n = 120_000  # the threaded path
    table = pa.table({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "y": rng.random(n)})
    schema = infer_schema(table)
    spec = profile_reference(table, schema, kll_k=0).spec
    seen: list[tuple[str, object, int]] = []
    p = profile_table(
        table, schema, spec, on_profile=lambda n, pr: seen.append((n, pr, threading.get_ident()))
    )
    assert [s[0] for s in seen] == ["x", "c", "y"]
    assert all(pr is p[name] and t == threading.get_ident() for name, pr, t in seen)


def test_profiling_leaves_its_input_as_it_was() -> None:
    """Columns are sorted in place only when the array is profiling's own copy."""
    rng = np.random.default_rng(5)
    n = 60_000
    x, k = rng.normal(size=n), rng.integers(0, 1000, n)
    x[::7] = np.nan
    frame = pd.DataFrame({"x": x, "k": k, "f": rng.random(n)})
    kept = frame.copy()
    chunked = pa.Table.from_batches(pa.Table.from_pandas(frame).to_batches(max_chunksize=9_999))
    kept_table = chunked.to_pandas()
    for data in (frame, chunked):
        p = profile(data)
        profile_table(pa.Table.from_pandas(frame), p.schema, p.spec)
    pd.testing.assert_frame_equal(frame, kept)
    pd.testing.assert_frame_equal(chunked.to_pandas(), kept_table)
