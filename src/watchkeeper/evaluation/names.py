"""The names a metric series is asked for, checked before it is read.

A misspelt metric, feature, version or segment column would otherwise select no points and
look like a model without data. :func:`check_series` raises a :class:`NotFoundError` naming
the valid ones instead (``GET /v1/models/{model}/metrics`` answers 404), and an
:class:`InputError` (400) for a feature given to a metric that has none, or none given to one
measured per feature.

The metrics are those of the catalogue (:mod:`watchkeeper.evaluation.metrics`); a metric's
features are the columns of the model's versions the evaluator writes it for (drift: the
drift columns, prediction drift: the prediction and scores, missing share: every column but
the ignored ones).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from watchkeeper.errors import InputError
from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.schema import Role, Schema
from watchkeeper.store.state import NotFoundError, Store

__all__ = ["check_series", "features_of"]


def features_of(schema: Schema, metric: str) -> list[str]:
    """The columns of ``schema`` the evaluator writes the per-feature ``metric`` for."""
    outputs = (Role.PREDICTION, Role.SCORE)
    if metric == "drift_statistic":
        return [c.name for c in schema.drift_columns() if c.role not in outputs]
    if metric == "prediction_drift":
        return [c.name for c in schema.columns.values() if c.role in outputs]
    return [c.name for c in schema.columns.values() if c.role != Role.IGNORED]


def _unknown(what: str, name: str, valid: Iterable[str]) -> NotFoundError:
    names = sorted(set(valid))
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(names) if names else "none"
    return NotFoundError(f"unknown {what} {name!r}{hint}; valid: {listed}")


def check_series(
    store: Store,
    model: str,
    metric: str,
    *,
    feature: str = "",
    version: str | None = None,
    segment: str | None = None,
) -> None:
    """Raise unless every name of a series query exists (the model must be registered)."""
    info = store.model(model)
    entry = CATALOGUE.get(metric)
    if entry is None:
        raise _unknown("metric", metric, CATALOGUE)
    versions = [v["version"] for v in store.versions(model)]
    if version is not None and version not in versions:
        raise _unknown(f"version of model {model!r}:", version, versions)
    if segment is not None and segment not in ("", "*"):
        key = r"\|".join(re.escape(c) + "=.*" for c in info.segments)
        if not info.segments or not re.fullmatch(key, segment, re.DOTALL):
            form = "|".join(f"{c}=<value>" for c in info.segments) or "none (no segments)"
            raise NotFoundError(
                f"unknown segment {segment!r}: the segments of model {model!r} are {form}"
            )
    if not entry.per_feature:
        if feature:
            raise InputError(f"metric {metric!r} is not measured per feature: leave out feature")
        return
    features: set[str] = set()
    for name in [version] if version is not None else versions:
        features.update(features_of(store.reference(model, name)[0], metric))
    if not feature:
        raise InputError(
            f"metric {metric!r} is measured per feature: give feature, one of "
            f"{', '.join(sorted(features)) or 'none'}"
        )
    if feature not in features:
        raise _unknown(f"feature of metric {metric!r}:", feature, features)
