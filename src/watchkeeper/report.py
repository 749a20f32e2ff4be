"""``compare(reference, current)``: drift, data quality and performance in one report.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> rng = np.random.default_rng(0)
>>> ref = pa.table({"x": rng.normal(size=5000), "y": rng.normal(size=5000)})
>>> cur = pa.table({"x": rng.normal(0.5, size=2000), "y": rng.normal(size=2000)})
>>> report = compare(ref, cur)
>>> report.drifted_columns
['x']
>>> report.drift["x"].method, report.drift["x"].statistic > report.drift["x"].threshold
('ks', True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper import __version__
from watchkeeper.attributions import (
    AttributionDrift,
    AttributionFit,
    Impact,
    attributions_option,
    fit_attributions,
    impact_of,
    window_attributions,
)
from watchkeeper.calibration_chunks import (
    MAX_REFERENCE_CHUNKS,
    MIN_REFERENCE_CHUNKS,
    ChunkPlan,
    chunk_plan,
    chunk_slices,
    dependence_matters,
    dependence_to_dict,
    needs_dependence_test,
    row_dependence_of,
    time_ordered,
)
from watchkeeper.errors import InputError
from watchkeeper.io import column_names, to_table
from watchkeeper.multivariate import (
    DEFAULT as DEFAULT_MULTIVARIATE,
)
from watchkeeper.multivariate import (
    MultivariateDrift,
    MultivariateFit,
    fit_multivariate,
    methods_of,
    multivariate_drift,
)
from watchkeeper.profiles import ColumnProfile, DatasetProfile, profile_reference, profile_table
from watchkeeper.progress import Progress
from watchkeeper.quality import Finding, compare_quality
from watchkeeper.report_settings import Setting, column_settings, resolve_schema
from watchkeeper.schema import Role, Schema
from watchkeeper.slices import FailingSlices, report_slices, slice_options
from watchkeeper.stats.drift import DEFAULT_METHODS, ColumnDrift, column_drift
from watchkeeper.stats.numeric import DEFAULT_BINS

__all__ = ["MAX_REFERENCE_CHUNKS", "MIN_REFERENCE_CHUNKS", "Report", "compare", "report_against"]


@dataclass
class Report:
    """The result of :func:`compare`. ``drift`` is ordered by effect size, largest first."""

    drift: dict[str, ColumnDrift]
    quality: dict[str, dict[str, Any]]
    findings: list[Finding]
    performance: dict[str, Any] | None
    schema: Schema
    settings: dict[str, Any]
    reference_rows: int
    current_rows: int
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    # the joint distribution of the input features (docs/multivariate.md); None when off
    multivariate_drift: MultivariateDrift | None = None
    # performance estimated without labels (docs/estimation.md); None when not estimable
    estimated_performance: dict[str, Any] | None = None
    # where the model does worse than elsewhere (docs/slices.md); None when off
    failing_slices: FailingSlices | None = None
    # the model's attributions and their drift (docs/explain.md); None when off
    attributions: AttributionDrift | None = None
    # the drifted features ranked by drift × attribution share (docs/explain.md)
    drift_impact: list[Impact] = field(default_factory=list)

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, d in self.drift.items() if d.drifted]

    @property
    def checked(self) -> list[str]:
        """Drift columns that got a statistic, in ``drift`` order."""
        return [name for name, d in self.drift.items() if d.statistic is not None]

    @property
    def unchecked(self) -> dict[str, str]:
        """Drift columns of the schema that could not be checked, each with the reason: absent
        from the current data, or without a value on one side (an empty input, say)."""
        out: dict[str, str] = {}
        for col in self.schema.drift_columns():
            d = self.drift.get(col.name)
            if d is None:
                out[col.name] = "missing from the current data"
            elif d.statistic is None:
                out[col.name] = (
                    "no values in the reference"
                    if d.n_reference == 0
                    else "no values in the current data"
                    if d.n_current == 0
                    else d.note or "no statistic"
                )
        return out

    @property
    def drift_usable(self) -> bool:
        """True when every drift column was checked (and there was at least one): only then
        does "no drift" mean something. A CI gate fails when this is false."""
        return bool(self.checked) and not self.unchecked

    @property
    def drift_share(self) -> float:
        checked = self.checked
        return len(self.drifted_columns) / len(checked) if checked else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.checked) and self.drift_share >= float(self.settings["drift_share"])

    def summary(self) -> dict[str, Any]:
        return {
            "columns_checked": len(self.checked),
            "drifted_columns": self.drifted_columns,
            "n_drifted": len(self.drifted_columns),
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "unchecked_columns": self.unchecked,
            "drift_usable": self.drift_usable,
            "findings": len(self.findings),
        }

    def to_dict(self) -> dict[str, Any]:
        n_cols = len(self.schema.columns)
        out: dict[str, Any] = _json_safe(
            {
                "watchkeeper_version": __version__,
                "created_at": self.created_at,
                "reference": {"rows": self.reference_rows, "columns": n_cols},
                "current": {"rows": self.current_rows, "columns": n_cols},
                "settings": self.settings,
                "summary": self.summary(),
                "drift": {name: d.to_dict() for name, d in self.drift.items()},
                "quality": self.quality,
                "findings": [f.to_dict() for f in self.findings],
                "performance": self.performance,
                "estimated_performance": self.estimated_performance,
                "schema": self.schema.to_dict(),
                "multivariate_drift": (
                    None if self.multivariate_drift is None else self.multivariate_drift.to_dict()
                ),
                "failing_slices": (
                    None if self.failing_slices is None else self.failing_slices.to_dict()
                ),
                "attributions": (
                    None if self.attributions is None else self.attributions.to_dict()
                ),
                "drift_impact": [i.to_dict() for i in self.drift_impact],
            }
        )
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save_json(self, path: str | Path) -> Path:
        out = Path(path)
        out.write_text(self.to_json(), encoding="utf-8")
        return out

    def save_html(self, path: str | Path) -> Path:
        from watchkeeper.html import render_html  # plots are built only when HTML is asked for

        out = Path(path)
        out.write_text(render_html(self.to_dict()), encoding="utf-8")
        return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def calibrated_columns(col_settings: Mapping[str, Setting]) -> list[str]:
    """The drift columns whose decision is calibrated: the ones a reference chunk serves."""
    return [n for n, s in col_settings.items() if s.decision == "calibrated"]


def compare(
    reference: object,
    current: object,
    *,
    target: str | None = None,
    prediction: str | None = None,
    scores: str | Sequence[str] | None = None,
    schema: Schema | None = None,
    columns: str | Sequence[str] | None = None,
    method: str | Mapping[str, str] | None = None,
    decision: str | Mapping[str, str] = "calibrated",
    false_alarm_rate: float = 0.01,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    timestamp: str | None = None,
    reference_chunks: int | None = None,
    bins: int = DEFAULT_BINS,
    seed: int | None = 0,
    progress: bool | None = None,
    multivariate: str | None = DEFAULT_MULTIVARIATE,
    slices: bool | Mapping[str, Any] = True,
    model: object | None = None,
    attributions: bool | None = None,
) -> Report:
    """Compare ``current`` data with a ``reference``: drift per column, data quality, and
    performance when ``target`` and ``prediction`` are given.

    ``method``: one method for all columns it applies to, or a mapping keyed by column name,
    ``"numeric"``, ``"categorical"`` or ``"default"``. ``decision``: ``"calibrated"``
    (per-column false-alarm rate ``false_alarm_rate``), ``"p_value"`` or ``"threshold"``, or
    a mapping keyed the same way; ``thresholds`` keyed by column or method name (the p-value
    threshold for ``"p_value"``, the fixed statistic threshold for ``"threshold"``).

    The reference is cut into consecutive chunks to measure its natural variation when it
    has a timestamp column (sorted by it), or into ``reference_chunks`` chunks when given (in
    row order, or sorted by the timestamp column when there is one). Otherwise each calibrated
    column's row order is tested, and a column whose values depend on their position in the
    reference (clustered or autocorrelated rows) is calibrated on its chunks in row order.

    ``multivariate``: the checks of the input features' joint distribution
    (``report.multivariate_drift``, ``docs/multivariate.md``): ``"pca"`` (the default: the PCA
    reconstruction error, fitted on a sample of the reference), ``"classifier"`` (the domain
    classifier, which also names the features that drive a change; seconds per call),
    ``"all"`` or None.

    ``slices``: with ``target`` and ``prediction``, the failing slices
    (``report.failing_slices``, ``docs/slices.md``): the features' ranges and categories, and
    pairs of them, where the model does significantly worse than on the rest of the current
    data. True (the default), False, or a mapping of options (``min_rows``, ``min_share``,
    ``ranges``, ``categories``, ``pairs``, ``top``).

    ``model``: the model (a scikit-learn estimator or pipeline, LightGBM, XGBoost, an ONNX
    Runtime session, or any ``predict``/``predict_proba`` callable) whose SHAP attributions
    explain the report (``report.attributions``: their drift; ``report.drift_impact``: the
    drifted features ranked by drift × attribution share; ``docs/explain.md``).
    ``attributions``: None (on when a model is given), True (without a model: a surrogate of
    it fitted to the ``prediction`` column, marked approximate, with its fidelity) or False.
    """
    if not 0 < false_alarm_rate < 1:
        raise InputError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    methods_of(multivariate)
    slice_options(slices)
    explain = attributions_option(attributions, model)
    scores = column_names(scores, "scores") or None
    columns = None if columns is None else column_names(columns, "columns")
    ref_t = to_table(reference, name="reference", dictionary_strings=True)
    with _Converting(current) as converting:
        for name in (target, prediction, *(scores or ())):
            if name is None or name in ref_t.column_names:
                continue
            if name not in converting.table().column_names:
                raise InputError(
                    f"unknown column {name!r}: not in the reference or the current data"
                )
        schema = resolve_schema(ref_t, schema, target, prediction, scores, timestamp, columns)
        try:
            col_settings = column_settings(schema, method, decision, thresholds or {})
        except ValueError as exc:
            raise InputError(str(exc)) from None
        # the report needs no quantile sketches: the costliest part of a profile is skipped
        profiled: list[str] = []
        ref_p = profile_reference(ref_t, schema, bins=bins, kll_k=0, on_column=profiled.append)
        cur_t = converting.table()
    with Progress(enabled=progress, rows=ref_t.num_rows + cur_t.num_rows) as bar:
        n_cols = len([c for c in schema.columns.values() if c.type.value in DEFAULT_METHODS])
        bar.start("profiling", n_cols * 2 + len(col_settings))
        for name in profiled:
            bar.step(name)
        dependence = None
        if needs_dependence_test(schema, reference_chunks) and dependence_matters(
            ref_t.num_rows, schema, cur_t.num_rows
        ):
            dependence = row_dependence_of(ref_t, ref_p, calibrated_columns(col_settings))
        plan = chunk_plan(
            ref_t.num_rows,
            schema,
            cur_t.num_rows,
            reference_chunks,
            dependence,
            calibrated_columns(col_settings),
        )
        chunk_tables = chunk_slices(time_ordered(ref_t, schema), plan.count) if plan.count else []
        bar.more(n_cols * len(chunk_tables))
        chunk_profiles = [
            profile_table(t, schema, ref_p.spec, on_column=bar.step) for t in chunk_tables
        ]
        return report_against(
            ref_t,
            ref_p,
            col_settings,
            cur_t,
            chunk_profiles,
            {
                "target": target,
                "prediction": prediction,
                "scores": scores,
                "decision": decision,
                "false_alarm_rate": false_alarm_rate,
                "drift_share": drift_share,
                "bins": bins,
                "seed": seed,
                "multivariate": multivariate,
                "reference_chunks": reference_chunks,
                "slices": slices,
                "attributions": explain,
            },
            bar.step,
            plan=plan,
            dependence=dependence,
            model=model,
        )


class _Converting:
    """``to_table(current)`` on a thread of its own, while the caller works on the reference.

    A pandas frame's object strings are Python work that holds the GIL; profiling the
    reference is numpy work that releases it: side by side they use both cores. Whatever
    goes wrong, the current data's own input error is raised first, as it was when the
    conversion ran before everything else.
    """

    def __init__(self, current: object) -> None:
        self._done: pa.Table | None = None
        self._pool: ThreadPoolExecutor | None = None
        if isinstance(current, pa.Table | pa.RecordBatch):  # nothing to convert
            self._done = to_table(current, name="current")
        else:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="watchkeeper-convert")
            self._job = self._pool.submit(
                to_table, current, name="current", dictionary_strings=True
            )

    def table(self) -> pa.Table:
        if self._done is None:
            self._done = self._job.result()
        return self._done

    def __enter__(self) -> _Converting:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)
        error = self._job.exception()
        if exc_type is not None and error is not None:
            raise error from None


def report_against(
    ref_t: pa.Table,
    ref_p: DatasetProfile,
    col_settings: Mapping[str, Setting],
    cur_t: pa.Table,
    chunk_profiles: list[DatasetProfile],
    options: Mapping[str, Any],
    step: Any = None,
    cache: dict[tuple[object, ...], Any] | None = None,
    performance_cache: dict[str, Any] | None = None,
    multivariate_fit: MultivariateFit | None = None,
    plan: ChunkPlan | None = None,
    dependence: Mapping[str, Any] | None = None,
    attribution_fit: AttributionFit | None = None,
    model: object | None = None,
    current_profile: DatasetProfile | None = None,
    current_columns: Sequence[str] | None = None,
) -> Report:
    """The report of ``cur_t`` against a reference already profiled (``ref_p``, and its
    chunks): what :func:`compare` and a fitted ``Reference`` both return. ``options``: the
    target, prediction, scores, decision, false_alarm_rate, drift_share, bins and seed;
    ``cache`` and ``performance_cache``: what the calibrations and the reference's performance
    keep for the next call (a fitted reference's); ``multivariate_fit``: the reference's side of
    the multivariate checks, fitted here when not given. ``options`` may also hold
    ``multivariate`` and ``reference_chunks``. ``plan``: which columns the chunks calibrate and
    why (every column when not given); ``dependence``: the row-order tests.
    ``attribution_fit``: the reference's attributions (fitted here with ``model``, or a
    surrogate, when not given and ``options["attributions"]`` is on).
    ``current_profile``: ``cur_t``'s profile on the reference's spec, computed elsewhere (on
    Spark's executors): ``cur_t`` then needs only the columns the row-level sections read,
    and ``current_columns`` names the columns of the current data."""
    schema = ref_p.schema
    step = step or (lambda _name="": None)
    # each column is judged as soon as its current profile is ready, on this thread,
    # while the profiling threads work on the next columns
    judge = _Judge(
        ref_p,
        chunk_profiles,
        col_settings,
        options["false_alarm_rate"],
        options["seed"],
        step,
        cache,
        plan,
    )
    if current_profile is None:
        cur_p = profile_table(cur_t, schema, ref_p.spec, on_column=step, on_profile=judge.column)
    else:
        cur_p = current_profile
        for name, col_p in cur_p.columns.items():
            step(name)
            judge.column(name, col_p)
    drift, quality, findings = judge.report(cur_p)

    names = cur_t.column_names if current_columns is None else list(current_columns)
    findings = _frame_findings(ref_t, cur_t.num_rows, names, schema) + findings
    performance = None
    target, prediction = options["target"], options["prediction"]
    if target is not None and prediction is not None:
        from watchkeeper.performance_report import performance_section

        performance = performance_section(
            ref_t, cur_t, target, prediction, options["scores"], findings, performance_cache
        )
    failing = report_slices(ref_p, cur_t, options, performance)
    methods = methods_of(options.get("multivariate", DEFAULT_MULTIVARIATE))
    joint = None
    if methods:
        if multivariate_fit is None:
            multivariate_fit = fit_multivariate(ref_t, schema, options["seed"])
        joint = multivariate_drift(
            multivariate_fit,
            ref_t,
            cur_t,
            methods,
            options["false_alarm_rate"],
            options["seed"],
            options.get("reference_chunks"),
        )
    estimated = _estimated(ref_t, cur_t, schema, options, findings, performance_cache)
    explained, impact = None, []
    if attribution_fit is None and options.get("attributions"):
        attribution_fit = fit_attributions(ref_t, schema, model, prediction, options["seed"])
    if attribution_fit is not None:
        explained = window_attributions(attribution_fit, cur_t, options["false_alarm_rate"])
        drifted = {
            n: d.effect_size or 0.0
            for n, d in drift.items()
            if d.drifted and schema.columns[n].role == Role.FEATURE
        }
        impact = impact_of(attribution_fit, drifted)
    decision = options["decision"]
    settings = {
        "decision": decision if isinstance(decision, str) else dict(decision),
        "false_alarm_rate": options["false_alarm_rate"],
        "drift_share": options["drift_share"],
        "bins": options["bins"],
        "reference_chunks": len(chunk_profiles),
        "row_dependence": dependence_to_dict(dependence),
        "methods": {n: c.method for n, c in col_settings.items()},
        "seed": options["seed"],
        "multivariate": list(methods),
    }
    return Report(
        drift=drift,
        quality=quality,
        findings=findings,
        performance=performance,
        schema=schema,
        settings=settings,
        reference_rows=ref_t.num_rows,
        current_rows=cur_t.num_rows,
        multivariate_drift=joint,
        estimated_performance=estimated,
        failing_slices=failing,
        attributions=explained,
        drift_impact=impact,
    )


def _nothing_to_estimate(
    ref_t: pa.Table, cur_t: pa.Table, options: Mapping[str, Any]
) -> str | None:
    """The note of a window that lacks the prediction or a score column, when the reference
    would give an estimator (it has the columns, and scores or a regression target): what
    ``estimated_section`` says of it once fitted; else None."""
    from watchkeeper.estimation.section import absent_outputs
    from watchkeeper.stats.performance import detect_task

    target, prediction, scores = options["target"], options["prediction"], options["scores"]
    note = absent_outputs(cur_t, prediction, scores)
    if note is None or absent_outputs(ref_t, prediction, [target, *(scores or ())]) is not None:
        return None
    if not scores:  # no estimator for a classifier without scores, and no note either
        y = ref_t.column(target).to_numpy(zero_copy_only=False)
        pred = ref_t.column(prediction).to_numpy(zero_copy_only=False)
        if detect_task(y, pred) != "regression":
            return None
    return note


def _estimated(
    ref_t: pa.Table,
    cur_t: pa.Table,
    schema: Schema,
    options: Mapping[str, Any],
    findings: list[Finding],
    cache: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The performance estimated without labels (CBPE, DLE), with a finding when the realized
    value contradicts it or the estimate is credibly worse than the reference."""
    target, prediction = options["target"], options["prediction"]
    if target is None or prediction is None:
        return None
    from watchkeeper.estimation.section import LOWER_IS_BETTER, estimated_section, fit_estimator

    memo: dict[str, Any] = {} if cache is None else cache
    if "estimator" not in memo:  # a fitted reference fits it once
        absent = _nothing_to_estimate(ref_t, cur_t, options)
        if absent is not None:
            # a window without the model's outputs has no estimate whatever the fit: none is
            # fitted for it (a DLE fit is two gradient-boosting models); the same note
            findings.append(Finding(None, "info", "no_estimate", absent))
            return None
        memo["estimator"] = fit_estimator(
            ref_t, schema, target, prediction, options["scores"], options["seed"]
        )
    est = memo["estimator"]
    if isinstance(est, str):
        if not est.startswith("no scores="):  # a classifier without scores: nothing to say
            findings.append(Finding(None, "info", "no_estimate", est))
        return None
    section, note = estimated_section(est, cur_t)
    if section is None:
        findings.append(Finding(None, "info", "no_estimate", note))
        return None
    h = section["headline"]
    m, realized = section["metrics"][h], (section["realized"] or {}).get(h)
    if section["concept_drift_suspected"]:
        findings.append(
            Finding(
                None,
                "warning",
                "estimate_disagrees",
                f"realized {h} {realized:.4g} is outside the estimate's interval "
                f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]: the relation between inputs and "
                "labels likely changed (concept drift), so estimates are not to be trusted",
            )
        )
    if section["degraded"]:
        side = "above" if h in LOWER_IS_BETTER else "below"
        findings.append(
            Finding(
                None,
                "warning",
                "estimated_performance_degraded",
                f"estimated {h} {m['value']:.4g} (interval [{m['ci_low']:.4g}, "
                f"{m['ci_high']:.4g}]) is {side} the reference's {section['reference'][h]:.4g}",
            )
        )
    return section


class _Judge:
    """Drift and quality of each column of the current data against the reference's."""

    def __init__(
        self,
        ref_p: DatasetProfile,
        chunks: list[DatasetProfile],
        col_settings: Mapping[str, Setting],
        alpha: float,
        seed: int | None,
        step: Any,
        cache: dict[tuple[object, ...], Any] | None = None,
        plan: ChunkPlan | None = None,
    ) -> None:
        self.ref_p, self.chunks, self.col_settings = ref_p, chunks, col_settings
        self.plan = plan
        self.alpha, self.seed, self.step = alpha, seed, step
        # calibrations shared across columns (and, given one, across calls)
        self.cache: dict[tuple[object, ...], Any] = {} if cache is None else cache
        self.done: dict[str, tuple[dict[str, Any], list[Finding], ColumnDrift | None]] = {}

    def column(self, name: str, cur: ColumnProfile) -> None:
        ref = self.ref_p.columns[name]
        is_target = self.ref_p.schema.columns[name].role == Role.TARGET
        quality, findings = compare_quality(name, ref, cur, late=is_target)
        drift = None
        if name in self.col_settings:
            setting = self.col_settings[name]
            chunked = self.plan is None or self.plan.uses_chunks(name)
            drift = column_drift(
                name,
                ref,
                cur,
                method=setting.method,
                decision=setting.decision,
                alpha=self.alpha,
                threshold=setting.threshold,
                chunks=(
                    [c.columns[name] for c in self.chunks if name in c.columns] or None
                    if chunked
                    else None
                ),
                seed=self.seed,
                noise_cache=self.cache,
                extrapolate=chunked and self.plan is not None and self.plan.columns is not None,
            )
            if self.plan is not None and name in self.plan.basis:
                drift.calibration_basis, drift.calibration_reason = self.plan.basis[name]
            self.step(name)
        self.done[name] = (quality, findings, drift)

    def report(
        self, cur_p: DatasetProfile
    ) -> tuple[dict[str, ColumnDrift], dict[str, dict[str, Any]], list[Finding]]:
        """The results in the reference's column order, drift ranked by effect size."""
        drift: dict[str, ColumnDrift] = {}
        quality: dict[str, dict[str, Any]] = {}
        findings: list[Finding] = []
        for name in self.ref_p.columns:
            cur = cur_p.columns.get(name)
            if cur is None:
                is_target = self.ref_p.schema.columns[name].role == Role.TARGET
                findings.append(_missing(name, is_target))
                continue
            if name not in self.done:
                self.column(name, cur)
            quality[name], more, column = self.done[name]
            findings.extend(more)
            if column is not None:
                drift[name] = column
        ranked = sorted(
            drift.values(), key=lambda d: -1.0 if d.effect_size is None else -d.effect_size
        )
        return {d.column: d for d in ranked}, quality, findings


def _missing(name: str, is_target: bool) -> Finding:
    if is_target:  # labels often arrive after the predictions: expected, not an error
        return Finding(
            name,
            "info",
            "missing_target",
            f"{name} (the target) is not in the current data: labels may not have arrived yet",
        )
    return Finding(name, "critical", "missing_column", f"{name} is missing from the current data")


def _frame_findings(
    ref: pa.Table, cur_rows: int, cur_columns: Sequence[str], schema: Schema
) -> list[Finding]:
    out = []
    if ref.num_rows == 0:
        out.append(Finding(None, "critical", "empty_reference", "the reference has no rows"))
    if cur_rows == 0:
        out.append(Finding(None, "critical", "empty_current", "the current data has no rows"))
    new = [c for c in cur_columns if c not in schema.columns]
    if new:
        out.append(Finding(None, "info", "new_columns", f"columns not in the reference: {new}"))
    return out
