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

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import InputError
from watchkeeper.profiles import DatasetProfile
from watchkeeper.schema import ColumnType, Role, coerce_column
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile, wilson_interval
from watchkeeper.stats.labels import label_strings, null_mask
from watchkeeper.stats.slices import SliceCounts, fisher_greater, holm, welch_greater

__all__ = ["DEFAULTS", "FailingSlices", "Slice", "failing_slices", "report_slices", "slice_options"]

DEFAULTS: dict[str, Any] = {
    "min_rows": 30,
    "min_share": 0.01,
    "ranges": 5,
    "categories": 20,
    "pairs": True,
    "top": 20,
}
# the integer options' bounds: a cell's code fits in one byte
LIMITS = {"min_rows": (2, 10**9), "ranges": (2, 50), "categories": (1, 200), "top": (1, 10**6)}
CONFIDENCE = 0.95
MISSING, OTHER = "(missing)", "(other)"
# a cell's description and its condition on the rows: {"column", "low", "high"} (a range,
# low <= x < high, either end open when None), {"column", "in": [category]}, {"column",
# "not_in": [the categories kept]} or {"column", "missing": True}
Label = tuple[str, dict[str, Any]]


def slice_options(value: object) -> dict[str, Any] | None:
    """The options of ``slices=``: True (the defaults), False (off), or a mapping overriding
    some of ``DEFAULTS``; anything else is an :class:`InputError` naming what is wrong."""
    if value is False or value is None:
        return None
    if value is True:
        return dict(DEFAULTS)
    if not isinstance(value, Mapping):
        raise InputError(f"slices must be True, False or a mapping of options, got {value!r}")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown slices option(s) {unknown}: known are {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **value}
    for key, (low, high) in LIMITS.items():
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise InputError(
                f"slices option {key} must be an integer in [{low}, {high}], got {v!r}"
            )
    share = out["min_share"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 0.5:
        raise InputError(f"slices option min_share must be in [0, 0.5), got {share!r}")
    if not isinstance(out["pairs"], bool):
        raise InputError(f"slices option pairs must be True or False, got {out['pairs']!r}")
    return out


@dataclass
class Slice:
    """One failing slice: its cells' description, rows, the metric in it and in the rest
    (with intervals), the test's p-value (raw and Holm-adjusted) and its impact."""

    description: str
    columns: list[str]
    conditions: list[dict[str, Any]]
    n: int
    n_rest: int
    metric: str
    slice_value: MetricValue
    rest_value: MetricValue
    error_rate: MetricValue | None
    error_rate_rest: MetricValue | None
    p_value: float
    adjusted_p_value: float
    impact: float

    @property
    def gap(self) -> float:
        """How much worse the slice is than the rest, in the metric's units (positive)."""
        s, r = self.slice_value["value"], self.rest_value["value"]
        assert s is not None and r is not None
        return r - s if self.metric == "accuracy" else s - r

    def sentence(self) -> str:
        """ "accuracy is lowest in country=DE, income ≥ 80k: 0.61 vs 0.82, n = 1,204"."""
        s, r = self.slice_value["value"], self.rest_value["value"]
        return f"{self.description}: {self.metric} {s:.3g} vs {r:.3g} elsewhere, n = {self.n:,}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "columns": self.columns,
            "conditions": self.conditions,
            "n": self.n,
            "n_rest": self.n_rest,
            "metric": self.metric,
            "slice": dict(self.slice_value),
            "rest": dict(self.rest_value),
            "gap": self.gap,
            "error_rate": None if self.error_rate is None else dict(self.error_rate),
            "error_rate_rest": None if self.error_rate_rest is None else dict(self.error_rate_rest),
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "impact": self.impact,
        }


@dataclass
class FailingSlices:
    """``report.failing_slices``: the slices found (ranked by impact) and how they were
    sought; ``reason`` says why nothing could be sought (no labels, say)."""

    slices: list[Slice] = field(default_factory=list)
    metric: str | None = None
    test: str | None = None
    rows: int = 0
    tested: int = 0
    significant: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    alpha: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "correction": "holm",
            "alpha": self.alpha,
            "rows": self.rows,
            "min_rows": self.min_size,
            "tested": self.tested,
            "significant": self.significant,
            "reported": len(self.slices),
            "options": self.options,
            "slices": [s.to_dict() for s in self.slices],
            "reason": self.reason,
        }

    @property
    def min_size(self) -> int:
        """The fewest labelled rows a tested cell (and the rest) holds."""
        if not self.options:
            return 0
        return max(
            int(self.options["min_rows"]), int(np.ceil(self.options["min_share"] * self.rows))
        )


def _fmt(value: float) -> str:
    if abs(value) >= 1e4:
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def _range_label(name: str, low: float | None, high: float | None) -> Label:
    text = (
        f"{_fmt(low)} ≤ {name} < {_fmt(high)}"
        if low is not None and high is not None
        else f"{name} < {_fmt(high)}"
        if high is not None
        else f"{name} ≥ {_fmt(low)}"
        if low is not None
        else f"{name} present"
    )
    return text, {"column": name, "low": low, "high": high}


def _numeric_codes(
    table: pa.Table, ref_p: DatasetProfile, name: str, ranges: int
) -> tuple[np.ndarray[Any, Any], list[Label]]:
    """Each row's range (the frozen bins merged to ``ranges`` of equal reference mass)."""
    edges = np.asarray(ref_p.spec.columns[name].edges, dtype=np.float64)
    counts = np.asarray(ref_p.columns[name].counts, dtype=np.float64)
    inner = counts[1:-1] if counts.size > 2 else np.zeros(0)
    bounds: list[float] = []
    if inner.sum() > 0 and edges.size > 2:
        share = np.cumsum(inner)[:-1] / inner.sum()  # the reference mass below edges[1:-1]
        for j in range(1, ranges):
            i = int(np.argmin(np.abs(share - j / ranges)))
            if 0 < share[i] < 1 and (not bounds or edges[i + 1] > bounds[-1]):
                bounds.append(float(edges[i + 1]))
    values, _ = coerce_column(table, ref_p.schema.columns[name])
    x = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    code = np.zeros(x.size, dtype=np.uint8)  # the number of cuts at or below each value
    for cut in bounds:
        code += x >= cut
    code[np.isnan(x)] = len(bounds) + 1
    cuts = [None, *bounds, None]
    labels = [_range_label(name, cuts[j], cuts[j + 1]) for j in range(len(bounds) + 1)]
    return code, [*labels, (f"{name} {MISSING}", {"column": name, "missing": True})]


def _categorical_codes(
    table: pa.Table, ref_p: DatasetProfile, name: str, keep: int, min_share: float
) -> tuple[np.ndarray[Any, Any], list[Label]]:
    """Each row's category: the reference's frequent ones, ``(other)`` and ``(missing)``."""
    cats = ref_p.spec.columns[name].categories
    counts = np.asarray(ref_p.columns[name].counts[: len(cats)], dtype=np.float64)
    total = max(float(ref_p.columns[name].counts.sum()), 1.0)
    order = [i for i in np.argsort(-counts, kind="stable") if counts[i] / total >= min_share]
    kept = [cats[i] for i in order[:keep]]
    index = {c: i for i, c in enumerate(kept)}
    values, _ = coerce_column(table, ref_p.schema.columns[name])
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    lookup = np.array([index.get(str(v), len(kept)) for v in dictionary] + [len(kept) + 1])
    raw = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    lookup = lookup.astype(np.uint8 if len(kept) + 2 <= 256 else np.int64)
    labels: list[Label] = [(f"{name}={c}", {"column": name, "in": [c]}) for c in kept]
    labels.append((f"{name}={OTHER}", {"column": name, "not_in": kept}))
    labels.append((f"{name} {MISSING}", {"column": name, "missing": True}))
    return lookup[raw], labels


def _loss(table: pa.Table, target: str, prediction: str, task: str) -> np.ndarray[Any, Any]:
    """Each row's loss (NaN where a label is missing): 0 / 1 errors or the absolute error."""
    y = np.asarray(table.column(target).to_numpy(zero_copy_only=False))
    p = np.asarray(table.column(prediction).to_numpy(zero_copy_only=False))
    if task == "regression":
        with np.errstate(invalid="ignore"):
            loss = np.abs(y.astype(np.float64) - p.astype(np.float64))
        return np.where(np.isfinite(loss), loss, np.nan)
    if any(a.dtype.kind in "iuf" for a in (y, p)):  # a bool array next to numbers reads 0 / 1
        y, p = (a.astype(np.int64) if a.dtype.kind == "b" else a for a in (y, p))
    keep = ~(null_mask(y) | null_mask(p))
    loss = np.full(y.size, np.nan)
    if y.dtype.kind in "iuf" and p.dtype.kind in "iuf":  # numbers: 1 and 1.0 are one label
        loss[keep] = y[keep] != p[keep]
    else:
        loss[keep] = label_strings(y[keep]) != label_strings(p[keep])
    return loss


def slice_features(ref_p: DatasetProfile) -> list[str]:
    """The columns sliced: the profiled features and segments."""
    return [
        n
        for n, c in ref_p.schema.columns.items()
        if c.role in (Role.FEATURE, Role.SEGMENT)
        and c.type in (ColumnType.NUMERIC, ColumnType.CATEGORICAL)
        and n in ref_p.spec.columns
        and n in ref_p.columns
    ]


def failing_slices(
    ref_p: DatasetProfile,
    cur_t: pa.Table,
    target: str,
    prediction: str,
    task: str | None,
    options: Mapping[str, Any],
    alpha: float,
) -> FailingSlices:
    """The failing slices of ``cur_t`` (see the module docstring)."""
    empty = FailingSlices(options=dict(options), alpha=alpha)
    absent = [n for n in (target, prediction) if n not in cur_t.column_names]
    if absent:
        empty.reason = f"the current data has no {' or '.join(map(repr, absent))} column: no labels"
        return empty
    if task is None:
        empty.reason = "no labels in the current data"
        return empty
    regression = task == "regression"
    metric = "mae" if regression else "accuracy"
    empty.metric = metric
    empty.test = "welch t, one-sided" if regression else "fisher exact, one-sided"
    loss = _loss(cur_t, target, prediction, task)
    labelled = ~np.isnan(loss)
    empty.rows = rows = int(labelled.sum())
    names = [n for n in slice_features(ref_p) if n in cur_t.column_names]
    if not names:
        empty.reason = "no feature to slice by"
        return empty
    min_size = empty.min_size
    if rows < 2 * min_size:
        empty.reason = f"{rows} labelled rows: fewer than twice the smallest slice ({min_size})"
        return empty
    table = cur_t.filter(pa.array(labelled)) if not labelled.all() else cur_t
    codes: dict[str, tuple[np.ndarray[Any, Any], int]] = {}  # small unsigned codes
    labels: dict[str, list[Label]] = {}
    for name in names:
        if ref_p.schema.columns[name].type == ColumnType.NUMERIC:
            code, label = _numeric_codes(table, ref_p, name, int(options["ranges"]))
        else:
            code, label = _categorical_codes(
                table, ref_p, name, int(options["categories"]), float(options["min_share"])
            )
        codes[name], labels[name] = (code, len(label)), label
    counts = SliceCounts.count(codes, loss[labelled], pairs=bool(options["pairs"]))
    return _judge(counts, labels, empty, alpha, regression)


def report_slices(
    ref_p: DatasetProfile,
    cur_t: pa.Table,
    options: Mapping[str, Any],
    performance: Mapping[str, Any] | None,
) -> FailingSlices | None:
    """``report.failing_slices``: the failing slices when asked for (``options["slices"]``,
    on unless False), of the report's ``options`` (target, prediction, false_alarm_rate)."""
    chosen = slice_options(options.get("slices", True))
    if chosen is None:
        return None
    target, prediction = options["target"], options["prediction"]
    if target is None or prediction is None:
        return FailingSlices(
            options=chosen,
            alpha=options["false_alarm_rate"],
            reason="no target and prediction columns given: no labels",
        )
    task = None if performance is None else performance.get("task")
    return failing_slices(
        ref_p, cur_t, target, prediction, task, chosen, options["false_alarm_rate"]
    )


def _judge(
    counts: SliceCounts,
    labels: Mapping[str, list[Label]],
    result: FailingSlices,
    alpha: float,
    regression: bool,
) -> FailingSlices:
    """Test every cell large enough, adjust, prune the explained ones and rank the rest."""
    min_size, total_n = result.min_size, counts.total[0]
    keys, flat = [], []
    for key, cells in counts.cells.items():
        n = cells[0]
        for index in np.flatnonzero((n >= min_size) & (total_n - n >= min_size)).tolist():
            keys.append((key, index))
            flat.append(cells[:, index])
    result.tested = len(keys)
    if not keys:
        result.reason = "no slice is large enough to test"
        return result
    sums = np.array(flat).T
    p = _p_values(sums, counts.total, regression)
    adjusted = holm(p)
    hits = np.flatnonzero(adjusted <= alpha)
    result.significant = int(hits.size)
    found = {keys[i]: (sums[:, i], float(p[i]), float(adjusted[i])) for i in hits}
    kept = _prune(found, counts, labels, alpha / len(keys), regression)
    z = normal_quantile(CONFIDENCE)
    out = []
    for (key, cell), (s, raw, adj) in kept.items():
        rest = counts.total - s
        slice_v, rest_v = (_metric(v, regression, z) for v in (s, rest))
        gap = (s[1] / s[0]) - (rest[1] / rest[0])
        cell_labels = _cell_labels(key, cell, labels)
        out.append(
            Slice(
                description=", ".join(text for text, _ in cell_labels),
                columns=list(key),
                conditions=[cond for _, cond in cell_labels],
                n=int(s[0]),
                n_rest=int(rest[0]),
                metric=result.metric or "",
                slice_value=slice_v,
                rest_value=rest_v,
                error_rate=None if regression else _rate(s),
                error_rate_rest=None if regression else _rate(rest),
                p_value=raw,
                adjusted_p_value=adj,
                impact=float(s[0] * gap),
            )
        )
    out.sort(key=lambda sl: (-sl.impact, sl.adjusted_p_value, sl.description))
    result.slices = out[: int(result.options["top"])]
    return result


def _p_values(sums: np.ndarray[Any, Any], total: np.ndarray[Any, Any], regression: bool) -> Any:
    """One-sided p-values of each column of ``sums`` against ``total`` minus it (``total``:
    one column for all, or one per column)."""
    rest = (total if total.ndim == 2 else total[:, None]) - sums
    if regression:
        return welch_greater(sums[0], sums[1], sums[2], rest[0], rest[1], rest[2])
    return fisher_greater(sums[1], sums[0], sums[1] + rest[1], sums[0] + rest[0])


def _cell_labels(key: tuple[str, ...], cell: int, labels: Mapping[str, list[Label]]) -> list[Label]:
    if len(key) == 1:
        return [labels[key[0]][cell]]
    kb = len(labels[key[1]])
    return [labels[key[0]][cell // kb], labels[key[1]][cell % kb]]


def _prune(
    found: dict[tuple[tuple[str, ...], int], tuple[Any, float, float]],
    counts: SliceCounts,
    labels: Mapping[str, list[Label]],
    level: float,
    regression: bool,
) -> dict[tuple[tuple[str, ...], int], tuple[Any, float, float]]:
    """Leave out a pair cell no worse than the rest of a significant single cell it lies in,
    and a single cell whose rows outside a kept pair cell are not worse than the rows outside
    it (one-sided tests at ``level``, all of a kind in one vectorised call)."""

    def worse(rows: list[Any], others: list[Any]) -> Any:  # are rows worse than others?
        if not rows:
            return np.zeros(0, dtype=bool)
        a, b = np.array(rows).T, np.array(others).T
        p = _p_values(a, a + b, regression)
        return (p <= level) & (np.minimum(a[0], b[0]) >= 2)

    pairs = [k for k in found if len(k[0]) == 2]
    parents = {}
    for key, cell in pairs:
        kb = len(labels[key[1]])
        parents[(key, cell)] = [((key[0],), cell // kb), ((key[1],), cell % kb)]
    checks = [(pair, par) for pair in pairs for par in parents[pair] if par in found]
    adds = worse(
        [found[pair][0] for pair, _ in checks],
        [counts.cells[par[0]][:, par[1]] - found[pair][0] for pair, par in checks],
    )
    dropped = {pair for (pair, _), ok in zip(checks, adds, strict=True) if not ok}
    kept = {k: v for k, v in found.items() if k not in dropped}
    inside = [(pair, par) for pair in pairs if pair not in dropped for par in parents[pair]]
    still = worse(
        [counts.cells[par[0]][:, par[1]] - found[pair][0] for pair, par in inside],
        [counts.total - counts.cells[par[0]][:, par[1]] for _, par in inside],
    )
    for (_, par), ok in zip(inside, still, strict=True):
        if not ok:
            kept.pop(par, None)
    return kept


def _metric(s: np.ndarray[Any, Any], regression: bool, z: float) -> MetricValue:
    n, s1, s2 = (float(v) for v in s)
    if regression:
        mae = s1 / n
        sd = np.sqrt(max(s2 - n * mae * mae, 0.0) / (n - 1)) if n > 1 else 0.0
        half = z * sd / np.sqrt(n)
        return metric_value(mae, mae - half, mae + half, "normal")
    lo, hi = wilson_interval(n - s1, n, CONFIDENCE)
    return metric_value((n - s1) / n, float(lo), float(hi), "wilson")


def _rate(s: np.ndarray[Any, Any]) -> MetricValue:
    n, errors = float(s[0]), float(s[1])
    lo, hi = wilson_interval(errors, n, CONFIDENCE)
    return metric_value(errors / n, float(lo), float(hi), "wilson")
