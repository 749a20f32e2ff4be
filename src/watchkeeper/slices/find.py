"""Find the failing slices: count, test, adjust, prune and rank (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.profiles import DatasetProfile
from watchkeeper.schema import ColumnType
from watchkeeper.slices.cells import (
    Label,
    categorical_codes,
    numeric_codes,
    row_loss,
    slice_features,
)
from watchkeeper.slices.result import CONFIDENCE, FailingSlices, Slice, slice_options
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile, wilson_interval
from watchkeeper.stats.slices import SliceCounts, fisher_greater, holm, welch_greater

__all__ = ["failing_slices", "report_slices"]


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
    loss = row_loss(cur_t, target, prediction, task)
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
            code, label = numeric_codes(table, ref_p, name, int(options["ranges"]))
        else:
            code, label = categorical_codes(
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
