"""Multivariate drift of a window against a reference: the PCA reconstruction error and the
domain classifier (see ``docs/multivariate.md``), on the schema's input features.

:func:`fit_multivariate` does the reference's part once (the encoder, the PCA, the held-out
errors); ``compare()`` calls it on every call, a fitted ``Reference`` keeps it.
:func:`multivariate_drift` judges one window.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> from watchkeeper.schema import infer_schema
>>> rng = np.random.default_rng(0)
>>> def draw(n, rho):
...     xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
...     return pa.table({"income": xy[:, 0], "age": xy[:, 1], "z": rng.normal(size=n)})
>>> ref = draw(5000, 0.8)
>>> fitted = fit_multivariate(ref, infer_schema(ref), seed=0)
>>> result = multivariate_drift(fitted, ref, draw(1000, -0.8), ("pca", "classifier"), 0.01, 0)
>>> result.drifted, result.message
(True, 'the joint distribution changed, mostly through age × income')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.calibration_chunks import reference_chunk_count
from watchkeeper.errors import InputError
from watchkeeper.multivariate.classifier import ROWS, domain_classifier
from watchkeeper.multivariate.encoding import Encoder
from watchkeeper.multivariate.reconstruction import (
    FIT_ROWS,
    HOLDOUT_ROWS,
    BootstrapNull,
    Pca,
    Threshold,
)
from watchkeeper.schema import ColumnType, Role, Schema

METHODS = ("pca", "classifier")
CHOICES: dict[str | None, tuple[str, ...]] = {
    "pca": ("pca",),
    "classifier": ("classifier",),
    "all": METHODS,
    None: (),
}
# a fit's no-drift bands by (window rows, alpha, reference chunks): the fit's bootstrap
# (BootstrapNull, drawn once) gives each the same band whatever the window's seed
ThresholdCache = dict[tuple[int, float, int], Threshold]
DEFAULT = "pca"  # cheap enough to be on by default; the classifier is opt-in
CURRENT_ROWS = 50_000  # window rows the PCA error is averaged over, at most (a random sample)
MIN_REFERENCE_ROWS = 100  # split in two halves of 50
MIN_CLASSIFIER_ROWS = 50  # per side


def methods_of(option: object) -> tuple[str, ...]:
    """The methods of ``compare(multivariate=...)``: ``"pca"``, ``"classifier"``, ``"all"``
    or None (also ``"none"``)."""
    key = None if option in (None, "none") else option
    if not isinstance(key, str | None) or key not in CHOICES:
        raise InputError(
            f"multivariate must be one of 'pca', 'classifier', 'all' or None, got {option!r}"
        )
    return CHOICES[key]


def _rng(seed: int | None, stream: int) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else (seed, stream))


@dataclass
class MultivariateFit:
    """The reference's side, computed once: the features, the encoder, the PCA and the errors
    of the held-out reference rows (``holdout_rows`` index the reference)."""

    columns: list[str]
    schema: Schema
    encoder: Encoder | None = None
    pca: Pca | None = None
    holdout_rows: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    holdout_errors: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    note: str | None = None
    seed: int | None = None  # the seed it was fitted with
    _ranks: NDArray[np.int64] | None = None  # each reference row's position in time order
    # the PCA thresholds already simulated, by window size (see ThresholdCache)
    thresholds: ThresholdCache = field(default_factory=dict, repr=False, compare=False)
    _null: BootstrapNull | None = field(default=None, repr=False, compare=False)

    def null(self) -> BootstrapNull:
        """The held-out errors' bootstrap, drawn once (on the first window) from ``seed``."""
        if self._null is None:
            self._null = BootstrapNull(self.holdout_errors, self.seed)
        return self._null

    def time_ranks(self, table: pa.Table) -> NDArray[np.int64]:
        if self._ranks is None:
            stamps = self.schema.by_role(Role.TIMESTAMP)
            ranks = np.arange(table.num_rows, dtype=np.int64)
            if stamps and stamps[0].name in table.column_names:
                order = np.asarray(pc.sort_indices(table.column(stamps[0].name)), dtype=np.int64)
                ranks[order] = np.arange(table.num_rows, dtype=np.int64)
            self._ranks = ranks
        return self._ranks


def feature_columns(schema: Schema) -> list[str]:
    """The inputs the multivariate checks read: drift columns with the feature role."""
    return [c.name for c in schema.drift_columns() if c.role == Role.FEATURE]


def fit_multivariate(table: pa.Table, schema: Schema, seed: int | None) -> MultivariateFit:
    """Split the reference's rows at random; fit the encoder and the PCA on one half (at most
    ``FIT_ROWS`` rows), score the other (at most ``HOLDOUT_ROWS``)."""
    with _one_thread():
        return _fit(table, schema, seed)


def _one_thread() -> Any:
    """The matrices are small (rows × features): one BLAS thread is as fast, and idle
    worker threads spin-wait for a long time when other processes keep the cores busy."""
    return _threadpools().limit(limits=1)


@cache
def _threadpools() -> Any:
    """The process's thread pools, found once: finding them walks every loaded library, which
    cost more than a chunk's PCA check itself. The BLAS the PCA uses is numpy's, loaded with
    numpy, before this is first called."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _fit(table: pa.Table, schema: Schema, seed: int | None) -> MultivariateFit:
    columns = feature_columns(schema)
    fit = MultivariateFit(columns, schema, seed=seed)
    n = table.num_rows
    if len(columns) < 2:
        fit.note = "needs at least two feature columns"
        return fit
    if n < MIN_REFERENCE_ROWS:
        fit.note = f"needs at least {MIN_REFERENCE_ROWS} reference rows, got {n}"
        return fit
    n_fit = min(n // 2, FIT_ROWS)
    n_holdout = min(n - n_fit, HOLDOUT_ROWS)
    picked = _rng(seed, 1).choice(n, n_fit + n_holdout, replace=False)
    is_fit = np.zeros(n, bool)
    is_fit[picked[:n_fit]] = True
    rows = np.sort(picked)  # one pass over the reference for both halves
    sample = table.select(columns).take(pa.array(rows))
    in_fit = is_fit[rows]
    fit.holdout_rows = rows[~in_fit]
    categorical = [c.name for c in schema.drift_columns() if c.type == ColumnType.CATEGORICAL]
    encoder = Encoder.fit(sample.filter(pa.array(in_fit)), columns, categorical)
    if len(encoder.columns) < 2:
        fit.note = "needs at least two feature columns that vary in the reference"
        return fit
    fit.encoder = encoder
    matrix = encoder.transform(sample, impute=True)
    fit.pca = Pca.fit(matrix[in_fit])
    fit.holdout_errors = fit.pca.errors(matrix[~in_fit])
    return fit


@dataclass
class MethodResult:
    """One multivariate method's decision: ``statistic`` > ``threshold`` means drifted."""

    method: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    reference_value: float | None  # the no-drift centre: the reference's mean error, or 0.5
    details: dict[str, Any]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_value": self.reference_value,
            **self.details,
            "note": self.note,
        }


@dataclass
class MultivariateDrift:
    """The multivariate section of a report: one result per method asked for."""

    columns: list[str]
    results: dict[str, MethodResult]

    @property
    def drifted(self) -> bool:
        return any(r.drifted for r in self.results.values())

    @property
    def drivers(self) -> list[tuple[str, float]]:
        """The features that separate window from reference, by importance (classifier only)."""
        res = self.results.get("classifier")
        drivers = [] if res is None else res.details.get("drivers", [])
        return [(d["column"], d["importance"]) for d in drivers]

    @property
    def message(self) -> str:
        if not self.drifted:
            return "no change in the joint distribution found"
        top = [name for name, imp in self.drivers[:2] if imp > 0]
        if top:
            return "the joint distribution changed, mostly through " + " × ".join(top)
        pca = self.results.get("pca")
        side = None if pca is None or not pca.drifted else pca.details.get("side")
        if side:
            fell_or_rose = str(side).removeprefix("error ")
            return f"the joint distribution changed (PCA reconstruction error {fell_or_rose})"
        return "the joint distribution changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "drifted": self.drifted,
            "message": self.message,
            "drivers": [{"column": n, "importance": v} for n, v in self.drivers],
            "methods": {name: r.to_dict() for name, r in self.results.items()},
        }


def current_sample(cur_t: pa.Table, columns: Sequence[str], seed: int | None) -> pa.Table:
    """The window's ``columns``, at most ``CURRENT_ROWS`` of its rows (a random sample)."""
    n_cur = cur_t.num_rows
    sample = cur_t.select(list(columns))
    if n_cur > CURRENT_ROWS:
        rows = np.sort(_rng(seed, 3).choice(n_cur, CURRENT_ROWS, replace=False))
        sample = sample.take(pa.array(rows))
    return sample


def multivariate_drift(
    fit: MultivariateFit,
    ref_t: pa.Table,
    cur_t: pa.Table,
    methods: Sequence[str],
    alpha: float,
    seed: int | None,
    reference_chunks: int | None = None,
) -> MultivariateDrift | None:
    """The window ``cur_t`` against the fitted reference, for each of ``methods``; None when
    no method is asked for."""
    if not methods:
        return None
    encoder = fit.encoder
    missing = [c for c in fit.columns if c not in cur_t.column_names]
    note = fit.note or (
        f"columns missing from the current data: {missing}"
        if missing
        else "the current data has no rows"
        if cur_t.num_rows == 0
        else None
    )
    if note is not None or encoder is None or fit.pca is None:
        skipped = {m: MethodResult(m, None, None, False, None, {}, note) for m in methods}
        return MultivariateDrift(fit.columns, skipped)
    n_cur = cur_t.num_rows
    sample = current_sample(cur_t, encoder.columns, seed)
    results: dict[str, MethodResult] = {}
    with _one_thread():
        if "pca" in methods:
            results["pca"] = _pca(fit, ref_t, sample, n_cur, alpha, seed, reference_chunks)
        if "classifier" in methods:
            results["classifier"] = _classifier(fit, ref_t, sample, alpha, seed)
    return MultivariateDrift(encoder.columns, results)


def _pca(
    fit: MultivariateFit,
    ref_t: pa.Table,
    sample: pa.Table,
    n_cur: int,
    alpha: float,
    seed: int | None,
    reference_chunks: int | None,
) -> MethodResult:
    assert fit.encoder is not None and fit.pca is not None
    return pca_decision(
        PcaParts(fit.encoder, fit.pca, fit.null(), ref_t.num_rows, fit.schema),
        lambda: fit.time_ranks(ref_t)[fit.holdout_rows],
        sample,
        n_cur,
        alpha,
        reference_chunks,
        fit.thresholds,
    )


@dataclass
class PcaParts:
    """What the PCA decision needs of the reference: the encoder, the PCA, the held-out rows'
    errors' bootstrap, the reference's row count and its schema (for its time order)."""

    encoder: Encoder
    pca: Pca
    null: BootstrapNull
    reference_rows: int
    schema: Schema


def pca_decision(
    parts: PcaParts,
    holdout_ranks: Callable[[], NDArray[np.int64]],
    sample: pa.Table,
    n_cur: int,
    alpha: float,
    reference_chunks: int | None,
    cache: ThresholdCache | None = None,
) -> MethodResult:
    """The PCA method's decision on ``sample`` (the window's rows, of ``n_cur`` in all), two-
    sided: drifted when the window's mean error leaves the no-drift band ``[lower, upper]``,
    either way (``side``: ``"error rose"`` or ``"error fell"``); ``threshold`` is the upper
    bound. ``holdout_ranks()`` gives each held-out reference row's position in time order,
    read only when the reference's chunks calibrate the band. ``cache``: the bands of the same
    reference side already computed, kept for the next window. The band comes from the
    fit's bootstrap (its seed), whatever the window's seed (which picks its sample)."""
    errors = parts.pca.errors(parts.encoder.transform(sample, impute=True))
    k = reference_chunk_count(parts.reference_rows, parts.schema, n_cur, reference_chunks)
    key = (len(errors), alpha, k)
    th = None if cache is None else cache.get(key)
    if th is None:
        chunk_ids = None
        if k:
            bounds = np.linspace(0, parts.reference_rows, k + 1).astype(int)
            chunk_ids = np.searchsorted(bounds, holdout_ranks(), side="right") - 1
        th = parts.null.threshold(len(errors), alpha, chunk_ids)
        if cache is not None:
            cache[key] = th
    value = float(errors.mean())
    side = th.side(value)
    details = {
        "lower_threshold": th.lower,
        "upper_threshold": th.upper,
        "side": side,
        "n_components": parts.pca.n_components,
        "explained_variance": parts.pca.explained,
        "reference_rows": len(parts.null.holdout),
        "current_rows": len(errors),
        "natural_variation": th.natural_variation,
        "reference_chunks": k,
        "tail": th.tail,
    }
    return MethodResult("pca", value, th.upper, side is not None, th.reference, details)


def _classifier(
    fit: MultivariateFit, ref_t: pa.Table, sample: pa.Table, alpha: float, seed: int | None
) -> MethodResult:
    assert fit.encoder is not None
    rng = _rng(seed, 5)
    n_ref = min(ref_t.num_rows, ROWS)
    n_cur = min(sample.num_rows, ROWS)
    if min(n_ref, n_cur) < MIN_CLASSIFIER_ROWS:
        note = f"needs at least {MIN_CLASSIFIER_ROWS} rows on each side"
        return MethodResult("classifier", None, None, False, 0.5, {}, note)
    ref_rows = np.sort(rng.choice(ref_t.num_rows, n_ref, replace=False))
    cur_rows = np.sort(rng.choice(sample.num_rows, n_cur, replace=False))
    columns = fit.encoder.columns
    ref_x = fit.encoder.transform(ref_t.select(columns).take(pa.array(ref_rows)), impute=False)
    cur_x = fit.encoder.transform(sample.take(pa.array(cur_rows)), impute=False)
    res = domain_classifier(ref_x, cur_x, columns, alpha=alpha, seed=seed)
    details = {
        "drivers": [{"column": n, "importance": v} for n, v in res.drivers],
        "reference_rows": n_ref,
        "current_rows": n_cur,
        "held_out_rows": res.held_out,
    }
    return MethodResult("classifier", res.auc, res.threshold, res.drifted, 0.5, details)
