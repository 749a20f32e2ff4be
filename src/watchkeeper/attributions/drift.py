"""Attribution drift: has the model's reliance on its features moved since the reference?

Two statistics per feature, from the attributions of a sample of the window and of the
reference (:mod:`watchkeeper.attributions.fit`):

* **mean |attribution| change** — the change in the feature's mean absolute attribution, as a
  share of the reference's total mean absolute attribution (``+0.12``: the feature now
  carries 12 points more of the model's attribution than it did);
* **distribution change** — the total variation distance between the feature's attributions
  in the window and in the reference, on ten bins frozen at the reference's deciles.

The decision is calibrated like every other in watchkeeper: the statistics' spread under no
change is simulated from the reference, at the window's sample size — each replicate draws a
window and a reference of the real sizes from the reference's attributions (rows resampled
together, so the features' dependence is kept) — and every statistic is standardised by its
replicates. The window is flagged when the largest standardised statistic exceeds the
``1 − false_alarm_rate`` quantile of the replicates' largest: the chance that a window with
no change is flagged is the stated false-alarm rate, whatever the number of features, and a
feature is named when its own statistic exceeds that threshold.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(1000, 3)) * [1.0, 0.5, 0.1]
>>> same = attribution_drift(ref, rng.normal(size=(500, 3)) * [1.0, 0.5, 0.1], ["a", "b", "c"])
>>> moved = attribution_drift(ref, rng.normal(size=(500, 3)) * [0.5, 1.0, 0.1], ["a", "b", "c"])
>>> same.drifted, moved.drifted, moved.drifted_features
(False, True, ['b', 'a'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]
BINS = 10
REPLICATES = 1000
STATISTICS = ("mean_abs_change", "distribution_change")


@dataclass
class Null:
    """The replicates of the reference side: each statistic's centre and spread under no
    change, and the threshold on the largest standardised statistic."""

    centre: NDArray[np.float64]
    spread: NDArray[np.float64]
    threshold: float


@dataclass
class FeatureAttribution:
    """One feature: its mean |attribution| and share on each side, the two statistics, their
    standardised values and whether it is flagged."""

    feature: str
    reference_mean_abs: float
    current_mean_abs: float
    reference_share: float
    current_share: float
    mean_abs_change: float
    distribution_change: float
    score: float  # the larger standardised statistic
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AttributionDrift:
    """The attribution drift of a window: ``features`` ranked by ``score``, the threshold on
    the largest standardised statistic, and what produced the attributions."""

    features: list[FeatureAttribution]
    threshold: float
    false_alarm_rate: float
    reference_rows: int
    current_rows: int
    method: str = "shap"
    source: str = "model"
    fidelity: dict[str, Any] | None = None
    note: str | None = None

    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def approximate(self) -> bool:
        return self.source == "surrogate"

    @property
    def message(self) -> str:
        if self.note is not None:
            return f"attribution drift not checked: {self.note}"
        if not self.drifted:
            text = "the model's reliance on its features did not change"
        else:
            top = self.features[0]
            verb = "more" if top.current_share > top.reference_share else "less"
            text = (
                f"the model relies {verb} on {top.feature}: {top.current_share:.0%} of its "
                f"attribution, {top.reference_share:.0%} in the reference"
            )
        return text + fidelity_note(self.source, self.fidelity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "message": self.message,
            "method": self.method,
            "source": self.source,
            "approximate": self.approximate,
            "fidelity": self.fidelity,
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "statistics": list(STATISTICS),
            "features": [f.to_dict() for f in self.features],
            "note": self.note,
        }


def fidelity_note(source: str, fidelity: dict[str, Any] | None) -> str:
    """`` (approximate: a surrogate, R² 0.93 on held-out rows)`` for a surrogate, else ``""``."""
    if source != "surrogate" or not fidelity:
        return ""
    name = "R²" if fidelity.get("metric") == "r2" else "agreement"
    return f" (approximate: a surrogate of the model, {name} {fidelity['value']:.2f} held out)"


def _edges(ref: Matrix) -> list[NDArray[np.float64]]:
    qs = np.linspace(0, 1, BINS + 1)[1:-1]
    return [np.unique(np.quantile(ref[:, j], qs)) for j in range(ref.shape[1])]


def _onehot(values: Matrix, edges: list[NDArray[np.float64]]) -> list[Matrix]:
    """Per feature, the rows' bins (rows × bins, one 1 per row)."""
    out = []
    for j, e in enumerate(edges):
        idx = np.searchsorted(e, values[:, j], side="right")
        m = np.zeros((len(values), len(e) + 1))
        m[np.arange(len(values)), idx] = 1.0
        out.append(m)
    return out


def _statistics(
    w_cur: Matrix, w_ref: Matrix, abs_ref: Matrix, bins: list[Matrix], total: float
) -> Matrix:
    """The statistics of windows given as row weights of the reference (replicates × rows,
    each row summing to 1): replicates × (features · 2)."""
    diff = w_cur - w_ref
    mean_abs = np.abs(diff @ abs_ref) / total
    tv = np.column_stack([0.5 * np.abs(diff @ b).sum(axis=1) for b in bins])
    out: Matrix = np.hstack([mean_abs, tv])
    return out


def _resampled(rng: np.random.Generator, n: int, size: int, replicates: int) -> Matrix:
    """Row weights of ``replicates`` resamples of ``size`` rows of ``n`` (with replacement)."""
    picks = rng.integers(0, n, size=(replicates, size)) + (np.arange(replicates) * n)[:, None]
    counts = np.bincount(picks.ravel(), minlength=replicates * n).reshape(replicates, n)
    out: Matrix = counts / size
    return out


def simulate_null(
    ref: Matrix, n_cur: int, alpha: float, rng: np.random.Generator, replicates: int = REPLICATES
) -> Null:
    """The no-change replicates for a window of ``n_cur`` explained rows."""
    n = len(ref)
    abs_ref = np.abs(ref)
    total = max(float(abs_ref.mean(axis=0).sum()), np.finfo(float).tiny)
    bins = _onehot(ref, _edges(ref))
    w_cur = _resampled(rng, n, n_cur, replicates)
    w_ref = _resampled(rng, n, n, replicates)
    stats = _statistics(w_cur, w_ref, abs_ref, bins, total)
    centre = stats.mean(axis=0)
    spread = stats.std(axis=0)
    z = _standardise(stats, centre, spread)
    return Null(centre, spread, float(np.quantile(z.max(axis=1), 1 - alpha)))


def _standardise(stats: Matrix, centre: NDArray[np.float64], spread: NDArray[np.float64]) -> Matrix:
    ok = spread > 0
    z = np.zeros_like(stats)
    z[:, ok] = (stats[:, ok] - centre[ok]) / spread[ok]
    # a statistic that never moves under no change (an unused feature): any change is one
    z[:, ~ok] = np.where(stats[:, ~ok] > centre[~ok] + 1e-12, np.inf, 0.0)
    return z


def attribution_drift(
    ref: Matrix,
    cur: Matrix,
    features: Sequence[str],
    *,
    false_alarm_rate: float = 0.01,
    seed: int | None = 0,
    null: Null | None = None,
) -> AttributionDrift:
    """The attribution drift of a window's attributions ``cur`` against the reference's
    ``ref`` (rows × ``features`` each). ``null``: the replicates already simulated for this
    reference and window size (:func:`simulate_null`)."""
    f = len(features)
    if null is None:
        rng = np.random.default_rng(None if seed is None else (seed, 15))
        null = simulate_null(ref, len(cur), false_alarm_rate, rng)
    abs_ref, abs_cur = np.abs(ref), np.abs(cur)
    ref_mean, cur_mean = abs_ref.mean(axis=0), abs_cur.mean(axis=0)
    total = max(float(ref_mean.sum()), np.finfo(float).tiny)
    cur_total = float(cur_mean.sum())
    edges = _edges(ref)
    bins_ref, bins_cur = _onehot(ref, edges), _onehot(cur, edges)
    change = (cur_mean - ref_mean) / total
    tv = np.array(
        [
            0.5 * np.abs(bc.mean(axis=0) - br.mean(axis=0)).sum()
            for bc, br in zip(bins_cur, bins_ref, strict=True)
        ]
    )
    z = _standardise(np.hstack([np.abs(change), tv])[None, :], null.centre, null.spread)[0]
    score = np.maximum(z[:f], z[f:])
    items = [
        FeatureAttribution(
            feature=str(features[j]),
            reference_mean_abs=float(ref_mean[j]),
            current_mean_abs=float(cur_mean[j]),
            reference_share=float(ref_mean[j] / total),
            current_share=float(cur_mean[j] / cur_total) if cur_total > 0 else 0.0,
            mean_abs_change=float(change[j]),
            distribution_change=float(tv[j]),
            score=float(score[j]),
            drifted=bool(score[j] > null.threshold),
        )
        for j in range(f)
    ]
    items.sort(key=lambda a: -a.score)
    return AttributionDrift(items, null.threshold, false_alarm_rate, len(ref), len(cur))
