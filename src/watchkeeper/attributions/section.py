"""The report's attribution section: the attribution drift of a window and the drift impact of
its drifted features, from a fitted reference's attributions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from watchkeeper.attributions.drift import AttributionDrift, attribution_drift, fidelity_note
from watchkeeper.attributions.drift import simulate_null as _simulate_null
from watchkeeper.attributions.fit import AttributionFit
from watchkeeper.attributions.impact import Impact, drift_impact
from watchkeeper.errors import InputError


def attributions_option(option: object, model: object | None) -> bool:
    """``compare(attributions=...)``: None (on when a model is given), True or False."""
    if option is None:
        return model is not None
    if not isinstance(option, bool):
        raise InputError(f"attributions must be True, False or None, got {option!r}")
    return option


def window_attributions(fit: AttributionFit, cur_t: pa.Table, alpha: float) -> AttributionDrift:
    """The attribution drift of the window ``cur_t`` (a sample of its rows explained)."""
    missing = [f for f in fit.features if f not in cur_t.column_names]
    note = (
        f"columns missing from the current data: {missing}"
        if missing
        else "the current data has no rows"
        if cur_t.num_rows == 0
        else None
    )
    cur = None if note else fit.explain_table(cur_t)
    if cur is None:
        note = note or "the model is not at hand (give it to Reference.load(..., model=...))"
        result = AttributionDrift([], float("nan"), alpha, len(fit.values), 0, note=note)
    else:
        key = (len(cur), alpha)
        null = fit.nulls.get(key) if fit.seed is not None else None
        if null is None:
            rng = np.random.default_rng(None if fit.seed is None else (fit.seed, 15))
            null = _simulate_null(fit.values, len(cur), alpha, rng)
            if fit.seed is not None:
                fit.nulls[key] = null
        result = attribution_drift(fit.values, cur, fit.features, false_alarm_rate=alpha, null=null)
    result.method, result.source, result.fidelity = fit.method, fit.source, fit.fidelity
    return result


def impact_of(fit: AttributionFit, effect_sizes: Mapping[str, float]) -> list[Impact]:
    """The drift impact of the drifted columns (name → effect size) on this model."""
    return drift_impact(effect_sizes, fit.shares, fidelity_note(fit.source, fit.fidelity))
