"""Each row's cell of each feature, on the reference's frozen bins, and each row's loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.io import column_values
from watchkeeper.profiles import DatasetProfile
from watchkeeper.schema import ColumnType, Role, coerce_column
from watchkeeper.stats.labels import label_strings, null_mask

__all__ = [
    "MISSING",
    "OTHER",
    "Label",
    "categorical_codes",
    "numeric_codes",
    "row_loss",
    "slice_features",
]

MISSING, OTHER = "(missing)", "(other)"
# a cell's description and its condition on the rows: {"column", "low", "high"} (a range,
# low <= x < high, either end open when None), {"column", "in": [category]}, {"column",
# "not_in": [the categories kept]} or {"column", "missing": True}
Label = tuple[str, dict[str, Any]]


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


def numeric_codes(
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


def categorical_codes(
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


def row_loss(table: pa.Table, target: str, prediction: str, task: str) -> np.ndarray[Any, Any]:
    """Each row's loss (NaN where a label is missing): 0 / 1 errors or the absolute error."""
    y, p = column_values(table, target), column_values(table, prediction)
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
