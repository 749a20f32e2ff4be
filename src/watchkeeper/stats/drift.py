"""Per-column drift: a statistic between two profiles and a decision that means something.

Decisions (``decision=``):

* ``"calibrated"`` (default): drift when the statistic exceeds what the reference itself shows
  under no drift at the current sample size, including its chunks' natural variation when it
  has a time order (:mod:`watchkeeper.stats.calibration`). ``alpha`` is the per-column
  false-alarm rate.
* ``"p_value"``: drift when the method's p-value is below ``threshold`` (default 0.05); only
  for methods that have one (``ks``, ``chisquare``).
* ``"threshold"``: drift when the statistic exceeds a fixed ``threshold`` (per-method
  defaults in :data:`FIXED_THRESHOLDS`).

Numeric columns are compared on the profile's fine histogram (``ks``, ``wasserstein``) or on
``COARSE_BINS`` equal-mass groups of it (the divergences), keeping the two out-of-range cells.

The calibrated ``ks`` decision has two companions on the same cells: the Anderson–Darling
statistic (``distances.anderson``), which sees changes of scale and of the tails that KS
misses on small windows, and the largest cell deviance (``distances.cell_deviance``), which
sees mass piled into a few cells (a stretched tail filling the outermost cells) that both
sums dilute; on windows of an effective size ``n·m/(n+m)`` up to ``COMPANION_MAX_N`` (beyond,
and when the reference's rows were found dependent (``extrapolate``), KS decides alone). The
column drifted when any exceeds its threshold; the thresholds are set on the same no-drift
replicates so that together they alarm at ``alpha``
(:func:`~watchkeeper.stats.calibration.either_quantiles`). ``companion`` in the result holds
the Anderson–Darling statistic, its threshold and the common per-statistic level, and in
``all`` every companion's statistic and threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, cast, overload

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from watchkeeper.stats import distances
from watchkeeper.stats.calibration import (
    NullThreshold,
    Statistic,
    check_alpha,
    effective_size,
    either_quantiles,
    null_samples,
    null_threshold,
    threshold_of,
)
from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.noise import NoiseCache
from watchkeeper.stats.numeric import NumericProfile

ColumnProfile = NumericProfile | CategoricalProfile
Counts = NDArray[np.int64]

COARSE_BINS = 20
KS_EXACT_MAX_N = 10_000
DECISIONS = ("calibrated", "p_value", "threshold")
NUMERIC_METHODS = ("ks", "wasserstein", "psi", "jensenshannon", "hellinger", "linf", "chisquare")
CATEGORICAL_METHODS = ("chisquare", "jensenshannon", "psi", "hellinger", "linf")
DEFAULT_METHODS = {"numeric": "ks", "categorical": "jensenshannon"}
# the p-value decision needs a method that has one
P_VALUE_METHODS = {"numeric": "ks", "categorical": "chisquare"}
FIXED_THRESHOLDS = {
    "ks": 0.1,
    "wasserstein": 0.1,
    "psi": 0.1,
    "jensenshannon": 0.1,
    "hellinger": 0.1,
    "linf": 0.1,
}
# distances are squared before tails are combined; divergences are already on that scale
POWER = {"psi": 1, "chisquare": 1, "anderson": 1, "cell_deviance": 1}
# the statistic that joins a method's calibrated decision, on windows of an effective size up
# to COMPANION_MAX_N: there KS is weak against changes of scale and tails; beyond, KS on the
# fine cells resolves changes of a few percent and decides alone
COMPANIONS = {"ks": ("anderson", "cell_deviance")}
COMPANION_MAX_N = 50_000


class _OnRead:
    """A field that may be set to a function of no arguments, called when the field is first
    read (and then kept): the exact KS p-value (scipy's, about 2 ms on a drifted column of a
    few thousand rows) is only reported, never decides a calibrated column, and a chunked
    analysis that reads the decisions alone need not compute it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> None: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> float | None: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> float | None:
        if obj is None:
            return None  # the dataclass's default
        value = obj.__dict__[self.slot]
        if callable(value):
            value = obj.__dict__[self.slot] = value()
        return cast(float | None, value)

    def __set__(self, obj: object, value: float | Callable[[], float | None] | None) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class ColumnDrift:
    """The drift result of one column. ``p_value`` may be set to a function that computes it
    (:class:`_OnRead`)."""

    column: str
    type: str
    method: str
    decision: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    p_value: _OnRead = _OnRead()
    effect_size: float | None = None
    n_reference: int = 0
    n_current: int = 0
    note: str | None = None
    calibration: NullThreshold | None = None
    companion: dict[str, Any] | None = None
    distribution: dict[str, Any] = field(default_factory=dict)
    # what the calibrated threshold was simulated from and why: "i.i.d. simulation" or
    # "contiguous reference chunks" (set by the report, which knows the reference's order)
    calibration_basis: str | None = None
    calibration_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "calibration"}
        if self.calibration is not None:
            out["null_median"] = self.calibration.null_median
            out["reference_chunks"] = self.calibration.chunks
            out["natural_variation"] = self.calibration.natural_variation
        return out


def check_method(kind: str, method: str, decision: str) -> None:
    """Raise ValueError naming the allowed values when a method or decision does not apply."""
    allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
    if method not in allowed:
        raise ValueError(
            f"method {method!r} does not apply to {kind} columns; use one of {allowed}"
        )
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if decision == "p_value" and method not in ("ks", "chisquare"):
        raise ValueError(f"method {method!r} has no p-value; use 'ks' or 'chisquare' with it")


def default_method(kind: str, decision: str) -> str:
    """The method a column of ``kind`` gets when none is named."""
    return (P_VALUE_METHODS if decision == "p_value" else DEFAULT_METHODS)[kind]


def _coarse_groups(n_cells: int) -> NDArray[np.intp]:
    """np.add.reduceat starts: outer cells alone, interior cells in COARSE_BINS groups."""
    interior = n_cells - 2
    if interior <= COARSE_BINS:
        return np.arange(n_cells)
    starts = 1 + (np.arange(COARSE_BINS) * interior) // COARSE_BINS
    return np.concatenate(([0], starts, [n_cells - 1])).astype(np.intp)


def _cells(profile: ColumnProfile, groups: NDArray[np.intp] | None) -> Counts:
    return profile.counts if groups is None else np.add.reduceat(profile.counts, groups)


def _wasserstein_boundaries(ref: NumericProfile, cur: NumericProfile) -> NDArray[np.float64]:
    lo = float(np.fmin(ref.minimum, cur.minimum))
    hi = float(np.fmax(ref.maximum, cur.maximum))
    return np.concatenate(([lo], ref.edges, [hi]))


def _cell_means(profile: NumericProfile, boundaries: NDArray[np.float64]) -> NDArray[np.float64]:
    mid = (boundaries[1:] + boundaries[:-1]) / 2
    filled = profile.counts > 0
    return np.where(filled, profile.sums / np.where(filled, profile.counts, 1), mid)


def _statistic_fns(
    method: str, ref: ColumnProfile, cur: ColumnProfile
) -> tuple[Statistic, Statistic]:
    """(the statistic for the observed pair, the one for no-drift replicates)."""
    if method == "wasserstein":
        assert isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile)
        bounds = _wasserstein_boundaries(ref, cur)
        ref_means, cur_means = _cell_means(ref, bounds), _cell_means(cur, bounds)
        scale = ref.std if ref.std > 0 else 1.0

        def observed(r: NDArray[np.generic], c: NDArray[np.generic]) -> NDArray[np.float64]:
            return distances.wasserstein(r, c, bounds, ref_means, cur_means) / scale

        def replicate(r: NDArray[np.generic], c: NDArray[np.generic]) -> NDArray[np.float64]:
            return distances.wasserstein(r, c, bounds, ref_means, ref_means) / scale

        return observed, replicate
    fn: Statistic = getattr(distances, method)
    return fn, fn


def _p_value(
    method: str, statistic: float, r: Counts, c: Counts
) -> float | Callable[[], float] | None:
    """The method's p-value, or for KS's exact law (the costly one) a function that computes
    it (:class:`_OnRead`)."""
    if method == "ks":  # scipy's asymptotic two-sample law; Kolmogorov's limit for large n
        n_eff = effective_size(int(r.sum()), int(c.sum()))
        if n_eff > KS_EXACT_MAX_N:
            return float(sps.kstwobign.sf(statistic * np.sqrt(n_eff)))
        return partial(_ks_exact, statistic, n_eff)
    if method == "chisquare":
        dof = distances.chisquare_dof(r, c)
        return float(sps.chi2.sf(statistic, dof)) if dof > 0 else 1.0
    return None


def _ks_exact(statistic: float, n_eff: int) -> float:
    return float(sps.kstwo.sf(statistic, n_eff))


def _distribution(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    if isinstance(ref, NumericProfile):
        return {
            "kind": "numeric",
            "edges": ref.edges.tolist(),
            "reference": ref.counts.tolist(),
            "current": cur.counts.tolist(),
        }
    assert isinstance(ref, CategoricalProfile)
    return {
        "kind": "categorical",
        "categories": [*ref.categories, "(other)"],
        "reference": ref.counts.tolist(),
        "current": cur.counts.tolist(),
    }


def column_drift(
    column: str,
    reference: ColumnProfile,
    current: ColumnProfile,
    *,
    method: str | None = None,
    decision: str = "calibrated",
    alpha: float = 0.01,
    threshold: float | None = None,
    chunks: list[ColumnProfile] | None = None,
    seed: int | None = 0,
    noise_cache: dict[tuple[object, ...], NDArray[np.float64]] | None = None,
    extrapolate: bool = False,
) -> ColumnDrift:
    """Compare one column's current profile with its reference profile. ``extrapolate``: the
    ``chunks`` are of rows found dependent, and the calibrated tail reaches past their largest
    excess (:func:`~watchkeeper.stats.calibration.null_threshold`)."""
    kind = "numeric" if isinstance(reference, NumericProfile) else "categorical"
    method = method or DEFAULT_METHODS[kind]
    check_method(kind, method, decision)
    n_ref, n_cur = reference.count, current.count
    result = ColumnDrift(
        column=column,
        type=kind,
        method=method,
        decision=decision,
        statistic=None,
        threshold=None,
        drifted=False,
        n_reference=n_ref,
        n_current=n_cur,
        distribution=_distribution(reference, current),
    )
    if n_ref == 0:
        result.note = "the reference has no values in this column; drift not computed"
        return result
    if n_cur == 0:
        result.note = "the current data has no values in this column; drift not computed"
        return result

    fine = kind == "numeric" and method in ("ks", "wasserstein")
    groups = _coarse_groups(len(reference.counts)) if kind == "numeric" and not fine else None
    r, c = _cells(reference, groups), _cells(current, groups)
    observed, stat = _statistic_fns(method, reference, current)
    result.statistic = float(observed(r, c))
    result.p_value = _p_value(method, result.statistic, r, c)
    g = _coarse_groups(len(reference.counts)) if kind == "numeric" else None
    result.effect_size = float(distances.jensenshannon(_cells(reference, g), _cells(current, g)))

    if decision == "p_value":
        result.threshold = 0.05 if threshold is None else threshold
        result.drifted = result.p_value is not None and result.p_value < result.threshold
    elif decision == "threshold":
        fixed = FIXED_THRESHOLDS.get(method) if threshold is None else threshold
        if fixed is None:
            raise ValueError(f"method {method!r} has no default fixed threshold; pass threshold=")
        result.threshold = fixed
        result.drifted = result.statistic > fixed
    else:
        chunk_cells = None
        if chunks:
            chunk_cells = np.stack([_cells(ch, groups) for ch in chunks])
        calibrate: dict[str, Any] = {
            "chunk_counts": chunk_cells,
            "seed": seed,
            "noise_cache": noise_cache if method != "wasserstein" else None,
            "scale_free": method != "chisquare",
            "open_cells": _open_cells(r) if kind == "numeric" else (len(r) - 1,),
        }
        companion = (
            COMPANIONS[method]
            if kind == "numeric"
            and method in COMPANIONS
            and not extrapolate
            and effective_size(n_ref, n_cur) <= COMPANION_MAX_N
            else None
        )
        # the finished calibration depends on the reference's side and the window's size
        # only: a fitted reference's chunks of one size share it (Wasserstein's null also
        # reads the window's range, so it is not kept)
        memo = (
            noise_cache.calibrations
            if isinstance(noise_cache, NoiseCache) and method != "wasserstein"
            else None
        )
        key: tuple[object, ...] = ()
        if memo is not None:
            key = (kind, method, companion, n_cur, int(c.sum()), alpha, seed, extrapolate)
            key += _cells_key(r, chunk_cells)
        if companion is not None:
            _calibrate_with_companion(result, companion, stat, r, c, alpha, calibrate, memo, key)
        else:
            calibration = None if memo is None else memo.get(key)
            if calibration is None:
                calibration = null_threshold(
                    stat,
                    r,
                    n_cur,
                    alpha=alpha,
                    power=POWER.get(method, 2),
                    extrapolate=extrapolate,
                    **calibrate,
                )
                if memo is not None:
                    memo[key] = calibration
            result.calibration = calibration
            result.threshold = result.calibration.threshold
            result.drifted = result.statistic > result.threshold
    if kind == "numeric" and method == "wasserstein":
        assert isinstance(reference, NumericProfile)
        if not reference.std > 0:
            result.note = "the reference is constant: Wasserstein distance is not normalised"
    return result


def _open_cells(r: Counts) -> tuple[int, ...]:
    """The cells of a numeric column that the population may fill though the reference left
    them empty: the two beyond its extremes, and the gaps between the values of a discrete
    reference (:func:`~watchkeeper.stats.numeric.discrete_edges`), every cell it left empty."""
    inner = np.flatnonzero(np.asarray(r)[1:-1] == 0) + 1
    return (0, *inner.tolist(), len(r) - 1)


def _cells_key(r: Counts, chunk_cells: Counts | None) -> tuple[object, ...]:
    """The reference's cells and its chunks' in a key of ``NoiseCache.calibrations``."""
    cells = np.asarray(r, dtype=np.int64).tobytes()
    if chunk_cells is None:
        return (cells, None)
    return (cells, chunk_cells.shape, np.asarray(chunk_cells, dtype=np.int64).tobytes())


def _calibrate_with_companion(
    result: ColumnDrift,
    companions: tuple[str, ...],
    stat: Statistic,
    r: Counts,
    c: Counts,
    alpha: float,
    calibrate: dict[str, Any],
    memo: dict[tuple[object, ...], Any] | None = None,
    key: tuple[object, ...] = (),
) -> None:
    """The calibrated decision of ``result.method`` joined by ``companions``: drift when any
    statistic exceeds its threshold, together alarming at ``alpha`` under no drift. ``memo``:
    the calibrations already done, by ``key``."""
    check_alpha(alpha)
    others: list[Statistic] = [getattr(distances, name) for name in companions]
    powers = [POWER.get(result.method, 2), *(POWER.get(name, 2) for name in companions)]
    done = None if memo is None else memo.get(key)
    if done is None:
        nulls = null_samples(
            list(zip((stat, *others), powers, strict=True)), r, int(c.sum()), **calibrate
        )
        (main, *rest), level, tail = either_quantiles([n.values for n in nulls], alpha)
        done = (
            threshold_of(nulls[0], main, powers[0], tail),
            [q ** (1 / k) for q, k in zip(rest, powers[1:], strict=True)],
            level,
        )
        if memo is not None:
            memo[key] = done
    result.calibration, thresholds, level = done
    result.threshold = result.calibration.threshold
    checks = [
        {"method": name, "statistic": float(other(r, c)), "threshold": threshold}
        for name, other, threshold in zip(companions, others, thresholds, strict=True)
    ]
    # the first companion's keys at the top, as before the second joined; ``all``: every one
    result.companion = {**checks[0], "level": level, "all": checks}
    assert result.statistic is not None
    crossed = [ch for ch in checks if ch["statistic"] > ch["threshold"]]
    result.drifted = result.statistic > result.threshold or bool(crossed)
    if crossed and not result.statistic > result.threshold:
        result.note = (
            "drifted on "
            + " and ".join(
                f"the {ch['method']} statistic ({ch['statistic']:.4g} > {ch['threshold']:.4g})"
                for ch in crossed
            )
            + f"; {result.method} is below its threshold"
        )
