"""Exact path-dependent TreeSHAP, leaf by leaf with precomputed tables (Fast TreeSHAP v2).

SHAP's path-dependent tree algorithm (Lundberg et al., 2020) costs O(T·L·D²) per row (trees ×
leaves × depth²). Its value function is a sum over leaves: a leaf ``l`` with value ``v`` and
the distinct features ``P`` of its path contributes ``v · Π_{j∈P} (o_j if j ∈ S else z_j)``,
where ``z_j`` is the share of the training cover that follows the path's splits on ``j`` and
``o_j`` is 1 when the row follows them all. The ``o`` of a row are bits: so each leaf's SHAP
contributions take one of ``2^|P|`` values, computed once per leaf; a row then costs
O(T·L·D) — find each leaf's pattern, add its row of the table (Yang, "Fast TreeSHAP", 2021).
The tables and the rows run compiled (numba, a dependency of SHAP) across the cores.

The trees are SHAP's own parse of the model (``shap.TreeExplainer(model).model``), so every
model SHAP reads is read the same way; models this does not cover (categorical splits, more
than one output) are left to SHAP; a leaf whose path has more than ``MAX_UNIQUE`` distinct
features gets no table: its contributions are computed row by row, as SHAP does.
The results equal SHAP's to rounding (checked by the tests and the benchmark).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

try:  # numba comes with SHAP; this module is imported only when SHAP explains a tree model
    from numba import prange
except ImportError:  # pragma: no cover
    prange = range  # type: ignore[misc]  # the same loop, one thread

MAX_UNIQUE = 10  # a leaf with up to 10 distinct features on its path gets a table (2^10 × 10)


@dataclass
class LeafTables:
    """The leaves of all trees, flattened: their paths' splits and their tables."""

    split_start: NDArray[np.int64]
    split_feature: NDArray[np.int64]
    split_threshold: NDArray[np.float64]
    split_left: NDArray[np.bool_]  # the path goes to the left child
    split_default_left: NDArray[np.bool_]  # a missing value goes left
    split_unique: NDArray[np.int64]  # which of the leaf's distinct features the split is on
    unique_start: NDArray[np.int64]
    unique_feature: NDArray[np.int64]
    table_start: NDArray[np.int64]
    table: NDArray[np.float64]
    zeros: NDArray[np.float64]  # z of each leaf's distinct features
    values: NDArray[np.float64]  # each leaf's value
    weights: NDArray[np.float64]  # Shapley weights by path size and coalition size
    expected_value: float
    n_features: int


def supported(ensemble: Any) -> bool:
    """Whether SHAP's parsed ``ensemble`` is one this computes: numeric splits, one output,
    raw output."""
    return bool(
        ensemble.values.shape[2] == 1
        and not np.any(ensemble.threshold_types[ensemble.children_left >= 0] != 0)
        and getattr(ensemble, "model_output", "raw") == "raw"
    )


def build(ensemble: Any, n_features: int) -> LeafTables:
    """The leaf tables of SHAP's parsed ``ensemble``."""
    starts, feats, thrs, lefts, defaults, uniq = [0], [], [], [], [], []
    ustarts, ufeats, values, covers = [0], [], [], []
    for t in range(ensemble.children_left.shape[0]):
        left, right = ensemble.children_left[t], ensemble.children_right[t]
        default = ensemble.children_default[t]
        feature, threshold = ensemble.features[t], ensemble.thresholds[t]
        weight, value = ensemble.node_sample_weight[t], ensemble.values[t, :, 0]
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if left[node] < 0:  # a leaf
                distinct: list[int] = []
                zero: list[float] = []
                for parent, went_left in path:
                    f = int(feature[parent])
                    child = left[parent] if went_left else right[parent]
                    share = weight[child] / weight[parent] if weight[parent] > 0 else 0.0
                    if f not in distinct:
                        distinct.append(f)
                        zero.append(1.0)
                    k = distinct.index(f)
                    zero[k] *= share
                    feats.append(f)
                    thrs.append(float(threshold[parent]))
                    lefts.append(went_left)
                    defaults.append(bool(default[parent] == left[parent]))
                    uniq.append(k)
                starts.append(len(feats))
                ufeats.extend(distinct)
                ustarts.append(len(ufeats))
                values.append(float(value[node]))
                covers.append(zero)
                continue
            stack.append((int(left[node]), [*path, (node, True)]))
            stack.append((int(right[node]), [*path, (node, False)]))
    sizes = np.diff(np.asarray(ustarts))
    tabled = sizes <= MAX_UNIQUE  # the others are computed row by row (O(p²) each)
    table_start = np.zeros(len(values) + 1, np.int64)
    table_start[1:] = np.cumsum(np.where(tabled, (2 ** np.minimum(sizes, MAX_UNIQUE)) * sizes, 0))
    zeros = np.zeros(len(ufeats))
    for i, z in enumerate(covers):
        zeros[ustarts[i] : ustarts[i + 1]] = z
    table = np.zeros(int(table_start[-1]))
    leaf_values = np.asarray(values)
    weights = _weights(int(sizes.max()) if len(sizes) else 0)
    _fill_tables(np.asarray(ustarts, np.int64), zeros, leaf_values, table_start, table, weights)
    expected = float(np.asarray(ensemble.base_offset).reshape(-1)[0]) + sum(
        v * float(np.prod(z)) for v, z in zip(values, covers, strict=True)
    )
    return LeafTables(
        np.asarray(starts, np.int64),
        np.asarray(feats, np.int64),
        np.asarray(thrs, np.float64),
        np.asarray(lefts, np.bool_),
        np.asarray(defaults, np.bool_),
        np.asarray(uniq, np.int64),
        np.asarray(ustarts, np.int64),
        np.asarray(ufeats, np.int64),
        table_start,
        table,
        zeros,
        leaf_values,
        weights,
        expected,
        n_features,
    )


def _weights(most: int) -> NDArray[np.float64]:
    """``w[p, m] = m! (p − m − 1)! / p!``: the Shapley weight of a coalition of ``m`` of the
    other ``p − 1`` features."""
    from math import factorial

    w = np.zeros((most + 1, most + 1))
    for p in range(1, most + 1):
        for m in range(p):
            w[p, m] = factorial(m) * factorial(p - m - 1) / factorial(p)
    return w


def shap_values(tables: LeafTables, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The SHAP values of the rows of ``x`` (rows × features)."""
    out = np.zeros((len(x), tables.n_features))
    _rows(
        np.ascontiguousarray(x, dtype=np.float64),
        tables.split_start,
        tables.split_feature,
        tables.split_threshold,
        tables.split_left,
        tables.split_default_left,
        tables.split_unique,
        tables.unique_start,
        tables.unique_feature,
        tables.table_start,
        tables.table,
        tables.zeros,
        tables.values,
        tables.weights,
        out,
    )
    return out


def _jit(fn: Any, parallel: bool = False) -> Any:
    import numba

    return numba.njit(cache=False, nogil=True, parallel=parallel)(fn)


def _fill_tables_py(
    ustart: Any, zeros: Any, values: Any, tstart: Any, table: Any, weights: Any
) -> None:  # pragma: no cover - compiled
    for leaf in range(len(values)):
        a = ustart[leaf]
        p = ustart[leaf + 1] - a
        if p == 0 or tstart[leaf + 1] == tstart[leaf]:
            continue
        base = tstart[leaf]
        poly = np.zeros(p + 1)
        for pattern in range(2**p):
            for k in range(p):
                poly[:] = 0.0
                poly[0] = 1.0
                size = 0
                for j in range(p):
                    if j == k:
                        continue
                    o = 1.0 if (pattern >> j) & 1 else 0.0
                    z = zeros[a + j]
                    size += 1
                    for m in range(size, 0, -1):
                        poly[m] = poly[m] * z + poly[m - 1] * o
                    poly[0] = poly[0] * z
                total = 0.0
                for m in range(p):
                    total += weights[p, m] * poly[m]
                o_k = 1.0 if (pattern >> k) & 1 else 0.0
                table[base + pattern * p + k] = values[leaf] * (o_k - zeros[a + k]) * total


def _rows_py(
    x: Any,
    sstart: Any,
    sfeat: Any,
    sthr: Any,
    sleft: Any,
    sdefault: Any,
    suniq: Any,
    ustart: Any,
    ufeat: Any,
    tstart: Any,
    table: Any,
    zeros: Any,
    values: Any,
    weights: Any,
    out: Any,
) -> None:  # pragma: no cover - compiled
    n_leaves = len(ustart) - 1
    for i in prange(x.shape[0]):
        row = x[i]
        phi = out[i]
        poly = np.zeros(weights.shape[0] + 1)
        for leaf in range(n_leaves):
            a = ustart[leaf]
            p = ustart[leaf + 1] - a
            if p == 0:
                continue
            pattern = (1 << p) - 1
            for s in range(sstart[leaf], sstart[leaf + 1]):
                v = row[sfeat[s]]
                goes_left = sdefault[s] if np.isnan(v) else v <= sthr[s]
                if goes_left != sleft[s]:
                    pattern &= ~(1 << suniq[s])
            if tstart[leaf + 1] > tstart[leaf]:
                base = tstart[leaf] + pattern * p
                for k in range(p):
                    phi[ufeat[a + k]] += table[base + k]
                continue
            # a long path: the product polynomial once, each feature's factor divided out
            poly[:] = 0.0
            poly[0] = 1.0
            for j in range(p):
                o = 1.0 if (pattern >> j) & 1 else 0.0
                z = zeros[a + j]
                for m in range(j + 1, 0, -1):
                    poly[m] = poly[m] * z + poly[m - 1] * o
                poly[0] = poly[0] * z
            for k in range(p):
                z = zeros[a + k]
                o_k = 1.0 if (pattern >> k) & 1 else 0.0
                if o_k == z:
                    continue
                total = 0.0
                if o_k == 1.0:  # divide by (z + t), from the top
                    q = poly[p]
                    total += weights[p, p - 1] * q
                    for m in range(p - 1, 0, -1):
                        q = poly[m] - z * q
                        total += weights[p, m - 1] * q
                else:  # divide by z (> 0 here)
                    for m in range(p):
                        total += weights[p, m] * poly[m] / z
                phi[ufeat[a + k]] += values[leaf] * (o_k - zeros[a + k]) * total


_compiled: dict[str, Any] = {}
# numba's default threading layer (workqueue) must not run two parallel loops at once: a
# service's threads take turns (each call already uses every core)
_one_at_a_time = threading.Lock()


def _fill_tables(*args: Any) -> None:
    if "fill" not in _compiled:
        _compiled["fill"] = _jit(_fill_tables_py)
    _compiled["fill"](*args)


def _rows(*args: Any) -> None:
    with _one_at_a_time:
        if "rows" not in _compiled:
            _compiled["rows"] = _jit(_rows_py, parallel=True)
        _compiled["rows"](*args)
