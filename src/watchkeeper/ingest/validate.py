"""Vectorised validation of an event table against a model version's schema.

A row is rejected, with a reason per field, when its ``prediction_id`` is missing, repeats
one earlier in the batch or is longer than the store holds, its timestamp does not parse or
lies outside the plausible range around the ingest time (:mod:`watchkeeper.ingest.bounds`), a
feature value has the wrong type, does not parse or is ±Infinity, a required feature
(``nullable: false`` in the schema) is missing or NaN, its latency is negative or implausibly
large, its prediction or segment key is longer than the store holds, or its id, prediction or
a segment contains a NUL character (the store's text cannot hold it). A value that breaks a
rule of the schema (:mod:`watchkeeper.constraints`) rejects the row too under the schema's
``on_violation: quarantine``; under ``count`` the row is accepted and the violation returned
as a warning. Without rules an unseen category or an out-of-range value is data to monitor,
not an error. Fields that are neither reserved nor in the schema are ignored and named in the
response.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.constraints import check
from watchkeeper.ingest import bounds
from watchkeeper.ingest.events import RESERVED
from watchkeeper.io import ISO_DATETIME_RE, coerce_array
from watchkeeper.schema import ColumnSchema, ColumnType, Role, Schema

_MISSING_RE = r"^\s*(?:|nan|na|n/a|null|none)\s*$"
CHECKED_ROLES = (Role.FEATURE, Role.SEGMENT)
NUL = "contains a NUL character (U+0000)"


@dataclass
class Validated:
    """The accepted rows (normalised) and the rejected ones with their reasons."""

    accepted: pa.Table
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    # accepted rows that break a rule under ``on_violation: count``: index, id, reasons
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _text_missing(arr: pa.Array) -> pa.Array:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return pc.fill_null(pc.match_substring_regex(arr, _MISSING_RE, ignore_case=True), False)
    if pa.types.is_floating(arr.type):
        return pc.fill_null(pc.is_nan(arr), False)
    return pa.array(np.zeros(len(arr), dtype=bool))


def as_text(arr: pa.Array) -> pa.Array:
    """A column as text; values Arrow cannot cast (lists, objects) as their JSON text."""
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        import json

        return pa.array(
            [None if v is None else json.dumps(v, default=str) for v in arr.to_pylist()],
            pa.string(),
        )


def _failed(table: pa.Table, n: int) -> np.ndarray[Any, Any]:
    failed = np.zeros(n, dtype=bool)
    if "status" in table.column_names:
        status = pc.utf8_lower(pc.fill_null(as_text(_column(table, "status")), ""))
        failed |= np.asarray(pc.equal(status, "error").to_numpy(zero_copy_only=False), dtype=bool)
    if "error" in table.column_names:
        failed |= np.asarray(_column(table, "error").is_valid().to_numpy(zero_copy_only=False))
    return failed


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def _plain(raw: pa.Array, col: ColumnSchema) -> bool:
    """A column that needs no parsing: numbers (or integers) for a numeric feature, text for a
    categorical one, and no rule to check. Its values cannot be of the wrong type; it is
    checked with the batch's other plain columns at once (``_plain_columns``)."""
    if col.rules():
        return False
    if col.type == ColumnType.NUMERIC:
        return bool(pa.types.is_floating(raw.type) or pa.types.is_integer(raw.type))
    return bool(pa.types.is_string(raw.type))


Flag = tuple[np.ndarray[Any, Any], str, Any]  # rows, field, problem (text or row -> text)


def _plain_columns(
    plain: list[tuple[ColumnSchema, pa.Array]],
    failed: np.ndarray[Any, Any],
    columns: dict[str, pa.Array],
) -> dict[str, list[Flag]]:
    """``validate``'s checks of the plain columns, a fixed number of calls for all of them:
    the numeric ones as one matrix (a null or NaN is absent, ±Infinity rejected), the text
    ones by their null counts. The coerced columns (float64, NaN as null; text as given) go
    to ``columns``; returned: each column's failed checks."""
    found: dict[str, list[Flag]] = {}
    numeric = [(col, raw) for col, raw in plain if col.type == ColumnType.NUMERIC]
    if numeric:
        matrix = np.vstack(
            [np.asarray(raw.to_numpy(zero_copy_only=False), dtype=np.float64) for _, raw in numeric]
        )
        absent, infinite = np.isnan(matrix), np.isinf(matrix)
        has_absent: np.ndarray[Any, Any] = np.asarray(absent.any(axis=1))
        has_infinite: np.ndarray[Any, Any] = np.asarray(infinite.any(axis=1))
        for j, (col, raw) in enumerate(numeric):
            if not has_absent[j] and pa.types.is_float64(raw.type):
                columns[col.name] = raw
            else:
                columns[col.name] = pa.array(matrix[j], pa.float64(), mask=absent[j])
            if has_absent[j] and not col.nullable and (absent[j] & ~failed).any():
                found.setdefault(col.name, []).append(
                    (absent[j] & ~failed, col.name, "missing required feature (null or NaN)")
                )
            if has_infinite[j]:
                found.setdefault(col.name, []).append(
                    (
                        infinite[j],
                        col.name,
                        lambda i, c=matrix[j]: f"not a finite number: {float(c[i])}",
                    )
                )
    for col, raw in plain:
        if col.type == ColumnType.NUMERIC:
            continue
        columns[col.name] = raw
        if raw.null_count and not col.nullable:
            missing = np.asarray(raw.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            if (missing & ~failed).any():
                found[col.name] = [
                    (missing & ~failed, col.name, "missing required feature (null or NaN)")
                ]
    return found


def _times(table: pa.Table, now: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Event times (``now`` where not given) and the rows whose timestamp does not parse."""
    n = table.num_rows
    if "timestamp" not in table.column_names:
        return np.full(n, now), np.zeros(n, dtype=bool)
    raw = _column(table, "timestamp")
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        ok = pc.fill_null(pc.match_substring_regex(raw, ISO_DATETIME_RE), False)
        numeric, _ = coerce_array(raw, "numeric")  # epoch seconds given as text
        stamps, _ = coerce_array(pc.if_else(ok, raw, None), "datetime")
        seconds = pc.divide(pc.cast(pc.cast(stamps, pa.int64()), pa.float64()), 1e6)
        value = pc.coalesce(seconds, numeric).to_numpy(zero_copy_only=False)
    else:
        kind = "datetime" if pa.types.is_temporal(raw.type) else "numeric"
        coerced, _ = coerce_array(raw, kind)
        if kind == "datetime":
            coerced = pc.divide(pc.cast(pc.cast(coerced, pa.int64()), pa.float64()), 1e6)
        value = coerced.to_numpy(zero_copy_only=False)
    value = np.asarray(value, dtype=np.float64)
    given = np.asarray(raw.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    bad = given & ~np.isfinite(value)
    return np.where(given & ~bad, value, now), bad


def _time_problems(
    event_time: np.ndarray[Any, Any], now: float, plausible: bounds.Plausibility
) -> tuple[np.ndarray[Any, Any], Any]:
    """Rows whose event time lies outside the plausible range (or the store's), and why."""
    low = now - plausible.max_event_age_days * 86400
    high = now + plausible.max_event_lead_seconds
    store_low, store_high = bounds.EVENT_TIME_RANGE
    outside = (event_time < max(low, store_low)) | (event_time > min(high, store_high))

    def problem(i: int) -> str:
        t = float(event_time[i])
        if not store_low <= t <= store_high:
            first, last = (
                dt.datetime.fromtimestamp(x, dt.UTC).date() for x in bounds.EVENT_TIME_RANGE
            )
            text = f"{t:.17g} is outside the times the store holds ({first} to {last})"
        elif t < low:
            text = f"{t:.17g} is more than {plausible.max_event_age_days:g} days before ingest"
        else:
            text = f"{t:.17g} is more than {plausible.max_event_lead_seconds:g} s after ingest"
        if low <= t / 1000 <= high:
            text += " (milliseconds? timestamps are epoch seconds)"
        return text

    return outside, problem


def _longer(values: pa.Array, limit: int) -> np.ndarray[Any, Any]:
    """Rows of a text column longer than ``limit`` characters."""
    lengths = pc.fill_null(pc.utf8_length(values), 0)
    return np.asarray(pc.greater(lengths, limit).to_numpy(zero_copy_only=False), dtype=bool)


def validate(
    table: pa.Table,
    schema: Schema,
    *,
    now: float | None = None,
    plausible: bounds.Plausibility | None = None,
    positive_score: str | None = None,
) -> Validated:
    """Split ``table`` into normalised accepted rows and rejected rows with reasons.

    ``positive_score``: the ``scores`` entry of a binary target's positive class
    (``score.<class>``); the schema's first score column takes it when the event does not
    name that column, as the label join does (:func:`watchkeeper.ingest.index.scores`)."""
    now = time.time() if now is None else now
    plausible = plausible or bounds.Plausibility()
    n = table.num_rows
    # (mask, field, problem) per check; a row's reasons are built only when it is rejected
    flags: list[tuple[np.ndarray[Any, Any], str, Any]] = []
    warned: list[tuple[np.ndarray[Any, Any], str, Any]] = []  # rule violations, counted only

    def flag(mask: np.ndarray[Any, Any], fieldname: str, problem: Any) -> None:
        if mask.any():
            flags.append((mask, fieldname, problem))

    columns: dict[str, pa.Array] = {}
    if "prediction_id" in table.column_names:
        ids = as_text(_column(table, "prediction_id"))
        missing = np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), True))
    else:
        ids = pa.nulls(n, pa.string())
        missing = np.ones(n, dtype=bool)
    flag(missing, "prediction_id", "missing")
    flag(_repeats(ids), "prediction_id", "repeats an earlier prediction_id in this batch")
    flag(
        _longer(ids, bounds.ID_CHARS),
        "prediction_id",
        f"longer than the {bounds.ID_CHARS} characters the store holds",
    )
    columns["prediction_id"] = ids

    event_time, bad_time = _times(table, now)
    flag(bad_time, "timestamp", "not an ISO 8601 time or epoch seconds")
    implausible, time_problem = _time_problems(event_time, now, plausible)
    flag(implausible & ~bad_time, "timestamp", time_problem)
    columns["event_time"] = pa.array(event_time)

    # A failed request may carry no usable input: it is kept for the error rate, not rejected
    # for missing features.
    failed = _failed(table, n)
    plain: list[tuple[ColumnSchema, pa.Array]] = []
    places: list[tuple[str, int]] = []
    for col in schema.columns.values():
        if col.role not in CHECKED_ROLES or col.type not in (
            ColumnType.NUMERIC,
            ColumnType.CATEGORICAL,
        ):
            continue
        if col.name not in table.column_names:
            if not col.nullable:
                flag(~failed, col.name, "missing required feature")
            columns[col.name] = pa.nulls(
                n, pa.float64() if col.type == ColumnType.NUMERIC else pa.string()
            )
            continue
        raw = _column(table, col.name)
        if _plain(raw, col):
            plain.append((col, raw))
            places.append((col.name, len(flags)))  # its checks' place among the reasons
            columns[col.name] = raw  # its place in the column order; replaced below
            continue
        coerced, _ = coerce_array(raw, col.type.value)
        given = np.asarray(raw.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        out_null = np.asarray(coerced.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        wrong = given & out_null
        if wrong.any():  # a value given but not kept: a missing marker ("NA", NaN) or wrong
            marker = np.asarray(_text_missing(raw).to_numpy(zero_copy_only=False), dtype=bool)
            wrong &= ~marker
        if wrong.any():
            shown = raw.to_pylist()
            expected = "a number" if col.type == ColumnType.NUMERIC else "a category value"
            flag(wrong, col.name, lambda i, s=shown, e=expected: f"expected {e}, got {s[i]!r}")
        absent = out_null & ~wrong
        if not col.nullable and (absent & ~failed).any():
            flag(absent & ~failed, col.name, "missing required feature (null or NaN)")
        if col.type == ColumnType.NUMERIC:
            infinite = np.asarray(pc.fill_null(pc.is_inf(coerced), False), dtype=bool)
            flag(infinite, col.name, lambda i, c=coerced: f"not a finite number: {c[i].as_py()}")
        for mask, problem in check(coerced, col):
            (flags if schema.on_violation == "quarantine" else warned).append(
                (mask, col.name, problem)
            )
        columns[col.name] = coerced
    found = _plain_columns(plain, failed, columns)
    for name, at in reversed(places):  # in schema order, as if checked one by one
        flags[at:at] = found.get(name, [])
    segments = [c.name for c in schema.by_role(Role.SEGMENT) if c.name in columns]
    if segments:  # the key ``name=value|...`` the prediction index stores
        key = np.full(n, len(segments) - 1, dtype=np.int64)
        for name in segments:
            lengths = pc.fill_null(pc.utf8_length(as_text(columns[name])), 0)
            key += len(name) + 1 + np.asarray(lengths.to_numpy(zero_copy_only=False))
        flag(
            key > bounds.SEGMENT_CHARS,
            segments[0],
            lambda i, k=key: (
                f"segment key of {k[i]} characters; the store holds {bounds.SEGMENT_CHARS}"
            ),
        )

    # The columns below are always there (null when not given), with fixed types: every
    # batch of a model version has the same columns, so the lake reads as one table.
    for col in schema.by_role(Role.PREDICTION):  # given by name, or from the event's prediction
        if col.name == "prediction":  # the reserved field, kept as text below
            continue
        kind = col.type.value if col.type.value in ("numeric", "categorical") else "categorical"
        source = col.name if col.name in table.column_names else "prediction"
        if source in table.column_names:
            columns[col.name], _ = coerce_array(_column(table, source), kind)
        else:
            columns[col.name] = pa.nulls(n, pa.float64() if kind == "numeric" else pa.string())
    for i, col in enumerate(schema.by_role(Role.SCORE)):  # for ROC AUC and prediction drift
        score_source = col.name if col.name in table.column_names or i else positive_score
        if score_source is not None and score_source in table.column_names:
            columns[col.name], _ = coerce_array(_column(table, score_source), "numeric")
        else:
            columns[col.name] = pa.nulls(n, pa.float64())
    for name in ("prediction", "status", "error"):
        if name in table.column_names:
            columns[name] = as_text(_column(table, name))
        else:
            columns[name] = pa.nulls(n, pa.string())
    for name in dict.fromkeys(["prediction", *(c.name for c in schema.by_role(Role.PREDICTION))]):
        if name in table.column_names and pa.types.is_string(columns[name].type):
            flag(
                _longer(columns[name], bounds.PREDICTION_CHARS),
                name,
                f"longer than the {bounds.PREDICTION_CHARS} characters the store holds",
            )
    if "version" in table.column_names:
        columns["version"] = as_text(_column(table, "version"))
    columns["latency_ms"] = pa.nulls(n, pa.float64())
    if "latency_ms" in table.column_names:
        latency, _ = coerce_array(_column(table, "latency_ms"), "numeric")
        given = np.asarray(_column(table, "latency_ms").is_valid().to_numpy(zero_copy_only=False))
        flag(
            given & np.asarray(latency.is_null().to_numpy(zero_copy_only=False)),
            "latency_ms",
            "expected a number",
        )
        ms = np.asarray(pc.fill_null(latency, 0.0).to_numpy(zero_copy_only=False), dtype=float)
        flag(ms < 0, "latency_ms", lambda i, m=ms: f"negative: {m[i]:g}")
        most = plausible.max_latency_ms
        flag(ms > most, "latency_ms", lambda i, m=ms: f"{m[i]:g} is above the maximum {most:g}")
        columns["latency_ms"] = latency
    for name in table.column_names:
        if name.startswith("score."):
            columns[name], _ = coerce_array(_column(table, name), "numeric")

    # The state store keeps these as text, which cannot hold a NUL character (PostgreSQL)
    for name in ("prediction_id", "prediction", *(c.name for c in schema.by_role(Role.SEGMENT))):
        text = columns.get(name)
        if text is not None and pa.types.is_string(text.type):
            nul = pc.fill_null(pc.match_substring(text, "\x00"), False)
            flag(np.asarray(nul.to_numpy(zero_copy_only=False), dtype=bool), name, NUL)

    known = (
        set(RESERVED)
        | set(schema.columns)
        | {c for c in table.column_names if c.startswith("score.")}
    )
    ignored = sorted(c for c in table.column_names if c not in known)
    full = pa.table(columns)
    bad = np.zeros(n, dtype=bool)
    for mask, _, _ in flags:
        bad |= mask
    rejected = []
    if bad.any():
        reasons = _reasons(flags, bad)
        rows = table.filter(pa.array(bad)).to_pylist()
        shown_ids = ids.filter(pa.array(bad)).to_pylist()
        for row, pid, i in zip(rows, shown_ids, reasons, strict=True):
            rejected.append(
                {
                    "index": i,
                    "prediction_id": bounds.fit_id(pid),
                    "event": _jsonable(row),
                    "reasons": reasons[i],
                }
            )
    warnings = []
    if warned:
        counted = np.zeros(n, dtype=bool)
        for mask, _, _ in warned:
            counted |= mask
        counted &= ~bad
        for i, why in _reasons(warned, counted).items():
            warnings.append({"index": i, "prediction_id": ids[i].as_py(), "reasons": why})
    accepted = full.filter(pa.array(~bad)) if rejected else full
    return Validated(accepted, rejected, ignored, warnings)


def _reasons(
    flags: list[tuple[np.ndarray[Any, Any], str, Any]], rows: np.ndarray[Any, Any]
) -> dict[int, list[dict[str, str]]]:
    """The reasons of each row in ``rows`` (a mask), in row order: one per check it failed."""
    reasons: dict[int, list[dict[str, str]]] = {int(i): [] for i in np.flatnonzero(rows)}
    for mask, fieldname, problem in flags:
        for i in np.flatnonzero(mask & rows).tolist():
            text = problem(i) if callable(problem) else problem
            reasons[i].append({"field": fieldname, "problem": text})
    return reasons


def _repeats(ids: pa.Array) -> np.ndarray[Any, Any]:
    """Rows whose (non-null) id appeared earlier in the batch. Dictionary codes are handed
    out in order of first appearance, so a row is a first appearance exactly when its code
    is above every code before it."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    codes = pc.fill_null(ids.dictionary_encode().indices, -1).to_numpy(zero_copy_only=False)
    codes = np.asarray(codes, dtype=np.int64)
    before = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    return (codes >= 0) & (codes <= before)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not np.isfinite(value):
            out[key] = str(value)
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        else:
            out[key] = str(value)
    return out


def label_problems(item: dict[str, Any]) -> list[dict[str, str]]:
    """Why a ground-truth label (``{"prediction_id", "label", ...}``) cannot be stored: an id or
    a label longer than the store holds, or a label that is NaN or ±Infinity (a number, or
    text such as ``"nan"``)."""
    problems = []
    pid, label = item.get("prediction_id"), item.get("label")
    if isinstance(pid, str) and len(pid) > bounds.ID_CHARS:
        problems.append(
            {"field": "prediction_id", "problem": f"longer than the {bounds.ID_CHARS} "
             "characters the store holds"}
        )  # fmt: skip
    if len(str(label)) > bounds.LABEL_CHARS:
        problems.append(
            {"field": "label", "problem": f"longer than the {bounds.LABEL_CHARS} characters "
             "the store holds"}
        )  # fmt: skip
    elif isinstance(label, float | str) and not isinstance(label, bool):
        try:
            number = float(label)
        except ValueError:
            number = 0.0
        if not np.isfinite(number):
            problems.append({"field": "label", "problem": f"not a finite value: {label!r}"})
    return problems
