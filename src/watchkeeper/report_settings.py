"""How :func:`watchkeeper.report.compare` resolves its options: the schema (inferred, or a
given one with the named roles applied to a copy) and each drift column's method, decision and
fixed threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from watchkeeper.errors import InputError
from watchkeeper.schema import ColumnType, Role, Schema, infer_schema
from watchkeeper.stats.drift import (
    CATEGORICAL_METHODS,
    DECISIONS,
    FIXED_THRESHOLDS,
    NUMERIC_METHODS,
    check_method,
    default_method,
)


def resolve_schema(
    reference: pa.Table,
    schema: Schema | None,
    target: str | None,
    prediction: str | None,
    scores: Sequence[str] | None,
    timestamp: str | None,
    columns: Sequence[str] | None,
) -> Schema:
    if schema is None:
        schema = infer_schema(
            reference, target=target, prediction=prediction, scores=scores, timestamp=timestamp
        )
    else:  # a given schema is copied, and the named roles applied to the copy
        roles: dict[str, Role] = {n: Role.SCORE for n in scores or ()}
        roles.update(
            {
                n: r
                for n, r in (
                    (target, Role.TARGET),
                    (prediction, Role.PREDICTION),
                    (timestamp, Role.TIMESTAMP),
                )
                if n is not None
            }
        )
        for name in roles:
            if name not in schema.columns:
                raise InputError(f"unknown column {name!r}: not in the schema")
        schema = Schema.from_dict(schema.to_dict()).with_overrides(
            {n: {"role": r} for n, r in roles.items() if schema.columns[n].role != r}
        )
    if columns is not None:
        unknown = [c for c in columns if c not in schema.columns]
        if unknown:
            raise InputError(f"unknown column(s) {unknown}; the reference has {schema.names()}")
        for col in schema.columns.values():
            col.drift = col.name in columns and col.type in (
                ColumnType.NUMERIC,
                ColumnType.CATEGORICAL,
            )
    return schema


@dataclass(frozen=True)
class Setting:
    method: str
    decision: str
    threshold: float | None


def _keyed(
    value: str | Mapping[str, str] | None, schema: Schema, what: str, allowed: Sequence[str]
) -> dict[str, str]:
    """A per-column option as a mapping keyed by column name, type name or "default"."""
    if value is None:
        return {}
    by_key = {"default": value} if isinstance(value, str) else dict(value)
    unknown = sorted(set(by_key) - set(schema.columns) - {"numeric", "categorical", "default"})
    if unknown:
        raise InputError(f"{what} given for unknown column(s) {unknown}")
    for key, name in by_key.items():
        if name not in allowed:
            where = "" if key == "default" else f"{key!r}: "
            raise InputError(f"{where}unknown {what} {name!r}; use one of {', '.join(allowed)}")
    return by_key


def column_settings(
    schema: Schema,
    method: str | Mapping[str, str] | None,
    decision: str | Mapping[str, str],
    thresholds: Mapping[str, float],
) -> dict[str, Setting]:
    """Method, decision and fixed threshold per drift column. Each option is one value for all
    columns, or a mapping keyed by column name, then ``"numeric"`` / ``"categorical"``, then
    ``"default"``. A single method name applies to the columns it can; others keep theirs."""
    known = (*NUMERIC_METHODS, *(m for m in CATEGORICAL_METHODS if m not in NUMERIC_METHODS))
    methods = _keyed(method, schema, "drift method", known)
    decisions = _keyed(decision, schema, "decision", DECISIONS)
    settings: dict[str, Setting] = {}
    for col in schema.drift_columns():
        kind = col.type.value
        chosen_decision = (
            decisions.get(col.name) or decisions.get(kind) or decisions.get("default", "calibrated")
        )
        fallback = default_method(kind, chosen_decision)
        explicit = methods.get(col.name) or methods.get(kind)
        chosen = explicit or methods.get("default") or fallback
        try:
            check_method(kind, chosen, chosen_decision)
        except ValueError as exc:
            if explicit is not None or chosen == fallback:
                raise InputError(f"column {col.name!r}: {exc}") from None
            chosen = fallback  # e.g. "ks" for all: categoricals keep their default
        limit = thresholds.get(col.name, thresholds.get(chosen))
        if chosen_decision == "threshold" and limit is None and chosen not in FIXED_THRESHOLDS:
            raise InputError(
                f"column {col.name!r}: method {chosen!r} has no default fixed threshold; "
                "give one in thresholds (CLI: --threshold)"
            )
        settings[col.name] = Setting(chosen, chosen_decision, limit)
    return settings
