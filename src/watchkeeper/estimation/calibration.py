"""Calibrating a classifier's scores on the labelled reference, and saying whether it helped.

Each class's score is mapped through its own isotonic regression, fitted one-vs-rest on the
reference (scikit-learn's ``IsotonicRegression``, clipped outside the fitted range); for more
than two classes the calibrated rows are renormalised to sum to 1. A binary task calibrates
the positive class and takes the complement. The fitted maps are kept as their breakpoints
and applied with ``numpy.interp``, which is what ``IsotonicRegression.predict`` computes, so a
fitted calibrator serialises to plain lists and applies without scikit-learn.

Whether calibration is needed is decided honestly: the reference is split in two halves at
random, each half is calibrated by the maps fitted on the other (cross-fitting), and the
cross-fitted Brier score is compared with the raw one. Calibration is kept only when it lowers
the Brier score; otherwise the scores are used as given (``method = "none"``). Quality is
reported as the Brier score and the expected calibration error (ECE: per class, the
row-weighted mean ``|observed share - mean score|`` over ``ECE_BINS`` equal-width bins,
averaged over the classes; binary: the positive class), before and after.

The maps are themselves estimates from a finite reference, and their error moves every
window's estimate the same way. So that the intervals can carry it, a kept calibration also
holds ``BOOTSTRAP`` refits of the maps on bootstrap resamples of the reference
(:meth:`Calibrator.transform_bootstrap`); their spread is the calibration's sampling error.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(size=4000)
>>> y = (rng.uniform(size=4000) < p**2).astype(int)   # the scores are over-confident
>>> cal = Calibrator.fit(p, y, n_classes=2)
>>> cal.method, cal.quality["ece_before"] > cal.quality["ece_after"]
('isotonic', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError

__all__ = ["BOOTSTRAP", "ECE_BINS", "Calibrator", "brier", "ece"]

BOOTSTRAP = 40
BOOT_GROUPS = 2000
ECE_BINS = 10
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def _onehot(y: IntArray, k: int) -> FloatArray:
    out: FloatArray = (y[:, None] == np.arange(k)[None, :]).astype(np.float64)
    return out


def brier(probs: FloatArray, y: IntArray) -> float:
    """Binary (K = 2): mean ``(p_pos - y)^2``, scikit-learn's ``brier_score_loss``; multiclass:
    mean over rows of ``sum_k (p_k - 1[y = k])^2``."""
    if len(y) == 0:
        return float("nan")
    if probs.shape[1] == 2:
        return float(np.mean((probs[:, 1] - (y == 1)) ** 2))
    return float(np.mean(((probs - _onehot(y, probs.shape[1])) ** 2).sum(1)))


def ece(probs: FloatArray, y: IntArray, bins: int = ECE_BINS) -> float:
    """Expected calibration error, one-vs-rest per class (binary: the positive class)."""
    if len(y) == 0:
        return float("nan")
    k = probs.shape[1]
    classes = [1] if k == 2 else list(range(k))
    out = []
    for j in classes:
        p, hit = probs[:, j], (y == j).astype(np.float64)
        b = np.minimum((p * bins).astype(np.int64), bins - 1)
        gap = np.bincount(b, weights=hit - p, minlength=bins)
        out.append(float(np.abs(gap).sum() / len(p)))
    return float(np.mean(out))


def _fit_maps(probs: FloatArray, y: IntArray, classes: list[int]) -> list[tuple[Any, Any]]:
    from sklearn.isotonic import IsotonicRegression

    maps = []
    for j in classes:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(probs[:, j], (y == j).astype(np.float64))
        maps.append((np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)))
    return maps


def _bootstrap_maps(
    probs: FloatArray, y: IntArray, classes: list[int], rng: np.random.Generator
) -> list[list[tuple[FloatArray, FloatArray]]]:
    """``BOOTSTRAP`` refits of the maps, each on a Poisson bootstrap of the rows (weights
    drawn Poisson(1), one draw per row shared by the classes). For speed the rows are first
    pooled by score: into their distinct scores, or into ``BOOT_GROUPS`` groups of consecutive
    ranks when there are more; each refit is a weighted isotonic regression of the groups.
    The pooling shifts every refit alike, and only the refits' spread is used."""
    from sklearn.isotonic import IsotonicRegression

    n = len(y)
    pooled = []
    for j in classes:
        values, inverse = np.unique(probs[:, j], return_inverse=True)
        if len(values) > BOOT_GROUPS:
            inverse = np.empty(n, dtype=np.intp)
            inverse[np.argsort(probs[:, j], kind="stable")] = np.arange(n) * BOOT_GROUPS // n
        count = np.bincount(inverse)
        pooled.append((inverse, np.bincount(inverse, probs[:, j]) / np.maximum(count, 1)))
    out = []
    for _ in range(BOOTSTRAP):
        w = rng.poisson(1.0, n).astype(np.float64)
        maps = []
        for j, (group, x) in zip(classes, pooled, strict=True):
            weight = np.bincount(group, w, minlength=len(x))
            hits = np.bincount(group, w * (y == j), minlength=len(x))
            keep = weight > 0
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(x[keep], hits[keep] / weight[keep], sample_weight=weight[keep])
            maps.append((np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)))
        out.append(maps)
    return out


def _apply(maps: list[tuple[FloatArray, FloatArray]], probs: FloatArray) -> FloatArray:
    k = probs.shape[1]
    if k == 2:
        pos = np.interp(probs[:, 1], *maps[0])
        return np.column_stack([1.0 - pos, pos])
    out = np.column_stack([np.interp(probs[:, j], *maps[j]) for j in range(k)])
    total = out.sum(1, keepdims=True)
    # a row every map sends to 0 keeps its raw scores (it cannot be renormalised)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), probs)


@dataclass
class Calibrator:
    """Per-class isotonic maps (breakpoints), or none when calibration did not help."""

    n_classes: int
    method: str  # "isotonic" or "none"
    maps: list[tuple[FloatArray, FloatArray]] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    # the maps refitted on bootstrap resamples of the reference (empty when method is "none")
    bootstrap: list[list[tuple[FloatArray, FloatArray]]] = field(default_factory=list)
    _tables: list[tuple[FloatArray, FloatArray]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def fit(
        cls, probs: npt.ArrayLike, y: npt.ArrayLike, *, n_classes: int, seed: int = 0
    ) -> Calibrator:
        """Fit on the reference: ``probs`` (n,) positive-class scores of a binary task or an
        (n, K) probability matrix, ``y`` the true class indices (0..K-1)."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        labels = np.asarray(y, dtype=np.intp)
        if p.shape != (len(labels), n_classes) or n_classes < 2:
            raise InputError(
                f"calibration needs an (n, {n_classes}) score matrix for {len(labels)} labels "
                f"and at least 2 classes, got scores of shape {p.shape}"
            )
        if len(labels) < 20:
            raise InputError(f"calibration needs at least 20 labelled rows, got {len(labels)}")
        classes = [1] if n_classes == 2 else list(range(n_classes))
        half = np.random.default_rng(seed).permutation(len(labels)) < len(labels) // 2
        crossed = np.empty_like(p)
        for fit_on in (half, ~half):
            maps = _fit_maps(p[fit_on], labels[fit_on], classes)
            crossed[~fit_on] = _apply(maps, p[~fit_on])
        before = {"brier": brier(p, labels), "ece": ece(p, labels)}
        after = {"brier": brier(crossed, labels), "ece": ece(crossed, labels)}
        needed = after["brier"] < before["brier"]
        quality = {
            "rows": len(labels),
            "brier_before": before["brier"],
            "brier_after": after["brier"],
            "ece_before": before["ece"],
            "ece_after": after["ece"],
            "needed": bool(needed),
            "cross_fitted": True,
        }
        if not needed:
            return cls(n_classes, "none", [], quality)
        boot = _bootstrap_maps(p, labels, classes, np.random.default_rng([seed, 1]))
        return cls(n_classes, "isotonic", _fit_maps(p, labels, classes), quality, boot)

    def transform(self, probs: npt.ArrayLike) -> FloatArray:
        """Calibrated (n, K) probabilities of raw scores ((n,) binary or (n, K))."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        if p.ndim != 2 or p.shape[1] != self.n_classes:
            raise InputError(f"expected scores for {self.n_classes} classes, got shape {p.shape}")
        return p if self.method == "none" else _apply(self.maps, p)

    def transform_bootstrap(self, probs: FloatArray) -> FloatArray:
        """(B, n, K): raw (n, K) probabilities through each bootstrap refit of the maps; B = 0
        without them."""
        if not self.bootstrap:
            return np.empty((0, *probs.shape))
        if self._tables is None:
            # each refit's map on the union of the refits' breakpoints, per class: a
            # piecewise-linear map is exact there, so one search serves all refits
            self._tables = []
            for j in range(len(self.bootstrap[0])):
                grid = np.unique(np.concatenate([maps[j][0] for maps in self.bootstrap]))
                values = np.array([np.interp(grid, *maps[j]) for maps in self.bootstrap])
                self._tables.append((grid, values))
        k = probs.shape[1]
        columns = [1] if k == 2 else list(range(k))
        cal = np.empty((len(self.bootstrap), probs.shape[0], len(columns)))
        for c, (j, (grid, values)) in enumerate(zip(columns, self._tables, strict=True)):
            x = np.clip(probs[:, j], grid[0], grid[-1])
            hi = np.clip(np.searchsorted(grid, x, side="right"), 1, max(len(grid) - 1, 1))
            lo = hi - 1
            span = grid[hi] - grid[lo] if len(grid) > 1 else np.ones_like(x)
            w = np.where(span > 0, (x - grid[lo]) / np.where(span > 0, span, 1.0), 0.0)
            cal[:, :, c] = values[:, lo] * (1.0 - w) + values[:, hi] * w
        if k == 2:
            return np.stack([1.0 - cal[:, :, 0], cal[:, :, 0]], axis=-1)
        total = cal.sum(-1, keepdims=True)
        return np.where(total > 0, cal / np.where(total > 0, total, 1.0), probs[None])

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes,
            "method": self.method,
            "maps": [[x.tolist(), y.tolist()] for x, y in self.maps],
            "quality": dict(self.quality),
            "bootstrap": [[[x.tolist(), y.tolist()] for x, y in maps] for maps in self.bootstrap],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        def arrays(pairs: list[Any]) -> list[tuple[FloatArray, FloatArray]]:
            return [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in pairs]

        # a calibrator saved before the bootstrap existed has none: its intervals leave out
        # the calibration's error, as they did then
        boot = [arrays(m) for m in data.get("bootstrap", [])]
        return cls(
            int(data["n_classes"]),
            str(data["method"]),
            arrays(data["maps"]),
            dict(data["quality"]),
            boot,
        )
