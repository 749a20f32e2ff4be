"""The validation of a served request's inputs, short-cut when they are plainly valid.

:func:`~watchkeeper.ingest.validate.validate` is vectorised for batches: its fixed cost (some
hundred Arrow calls, about a millisecond) dwarfs a one-row request's scoring. A served request
whose values are already of the schema's types — numbers for numeric features, text for
categorical ones, no rule to check, ids of the store's length — needs none of its parsing:
:func:`plain_inputs` builds the same accepted table (the same columns, types, order and
values, checked by a test against ``validate``) straight from the request's lists, and
returns None for anything else (a value to parse or to reject, a missing required feature, a
rule, a reserved field among the inputs), which then goes through ``validate`` and gets its
reasons from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from watchkeeper.ingest import bounds
from watchkeeper.ingest.events import RESERVED
from watchkeeper.schema import ColumnType, Role, Schema

CHECKED_ROLES = (Role.FEATURE, Role.SEGMENT)


def plain_inputs(
    ids: Sequence[str],
    now: float,
    version: str,
    columns: Mapping[str, Sequence[Any]],
    schema: Schema,
) -> pa.Table | None:
    """``validate``'s accepted table of the events ``{prediction_id: ids, timestamp: now,
    version, **columns}`` when every row is plainly valid, else None (see the module)."""
    n = len(ids)
    outputs = {c.name for c in (*schema.by_role(Role.PREDICTION), *schema.by_role(Role.SCORE))}
    for name in columns:
        if name in RESERVED or name in outputs or name.startswith("score."):
            return None
    if not _plain_ids(ids):
        return None
    out: dict[str, pa.Array] = {
        "prediction_id": pa.array(list(ids), pa.string()),
        "event_time": pa.array([float(now)] * n, pa.float64()),
    }
    segments: list[str] = []
    for col in schema.columns.values():
        if col.role not in CHECKED_ROLES or col.type not in (
            ColumnType.NUMERIC,
            ColumnType.CATEGORICAL,
        ):
            continue
        if col.rules():
            return None
        numeric = col.type == ColumnType.NUMERIC
        values = columns.get(col.name)
        if values is None:
            if not col.nullable:
                return None
            out[col.name] = pa.nulls(n, pa.float64() if numeric else pa.string())
            continue
        if not all(_plain(v, numeric, col.nullable) for v in values):
            return None
        out[col.name] = pa.array(values, pa.float64() if numeric else pa.string())
        if col.role == Role.SEGMENT:
            segments.append(col.name)
    if segments and not _plain_segments(columns, segments, n):
        return None
    for col in schema.by_role(Role.PREDICTION):
        if col.name != "prediction":
            numeric = col.type == ColumnType.NUMERIC
            out[col.name] = pa.nulls(n, pa.float64() if numeric else pa.string())
    for col in schema.by_role(Role.SCORE):
        out[col.name] = pa.nulls(n, pa.float64())
    for name in ("prediction", "status", "error"):
        out[name] = pa.nulls(n, pa.string())
    out["version"] = pa.array([version] * n, pa.string())
    out["latency_ms"] = pa.nulls(n, pa.float64())
    return pa.table(out)


def _plain_ids(ids: Sequence[str]) -> bool:
    return len(set(ids)) == len(ids) and all(
        isinstance(i, str) and i.strip() and len(i) <= bounds.ID_CHARS and "\x00" not in i
        for i in ids
    )


def _plain(value: Any, numeric: bool, nullable: bool) -> bool:
    if value is None:
        return nullable
    if numeric:
        if type(value) is int:
            return abs(value) < 2**53  # exactly a float64
        return type(value) is float and math.isfinite(value)
    return type(value) is str and "\x00" not in value and _not_missing(value)


def _not_missing(text: str) -> bool:
    """Not a missing marker (``""``, ``NA``, ``null``...), which validate treats apart."""
    return text.strip().lower() not in ("", "nan", "na", "n/a", "null", "none")


def _plain_segments(columns: Mapping[str, Sequence[Any]], names: list[str], n: int) -> bool:
    """Every row's segment key (``name=value|...``) fits the store."""
    for i in range(n):
        key = len(names) - 1 + sum(len(name) + 1 + len(columns[name][i] or "") for name in names)
        if key > bounds.SEGMENT_CHARS:
            return False
    return True
