"""One scoring request, monitored by construction.

The inputs are checked against the version's schema first (the ingest validation: a wrong
type, a missing required feature); then the version's model scores them and every row
becomes a prediction event — inputs, prediction, class scores, latency, status, version —
logged durably through the ingest path, in process (no HTTP hop). The answer carries the
prediction ids (the client's, or generated), to send the labels with later.

Nothing is dropped silently: rows that fail the schema, and every row of a request whose
model does not load, go to the quarantine with the reason, and the request is answered 4xx or
5xx naming it; a model that raises while scoring answers 500, and its rows are logged as
events with ``status: error`` and the error text.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.errors import InputError
from watchkeeper.ingest.accept import accept_table, check_backlog, log_batch
from watchkeeper.ingest.bounds import Plausibility
from watchkeeper.ingest.outputs import with_outputs
from watchkeeper.ingest.quick import plain_inputs
from watchkeeper.ingest.spool import Record
from watchkeeper.ingest.validate import Validated, validate
from watchkeeper.io import category_text
from watchkeeper.schema import ColumnType, Role, Schema
from watchkeeper.serving.loaders import ModelLoadError, Scored
from watchkeeper.serving.registry import ScoredRequest, ServedModels

log = logging.getLogger(__name__)
MAX_REASONS = 5  # of the rejected rows named in an error message


@dataclass
class Answer:
    model: str
    version: str
    prediction_ids: list[str]
    predictions: list[Any]
    scores: np.ndarray[Any, Any] | None
    classes: list[str]
    latency_ms: float


def score(
    served: ServedModels,
    model: str,
    columns: dict[str, list[Any]],
    *,
    version: str | None = None,
    prediction_ids: list[str] | None = None,
) -> Answer:
    """Score the rows (a list of values per feature) with ``version`` (default: the
    champion, or a canary for its share of the requests) and log them as the model's
    prediction events."""
    store, settings = served.store, served.settings
    version = version or served.answering(model, columns)
    info = served.meta.version(model, version)
    schema: Schema = info.schema
    n = _rows(columns)
    if n > settings.max_batch_events:
        raise InputError(f"{n} rows; the limit is {settings.max_batch_events} per request")
    ids = _ids(prediction_ids, n)
    _check_backlog(served)
    now = time.time()
    base: dict[str, list[Any]] = {
        "prediction_id": ids,
        "timestamp": [now] * n,
        "version": [version] * n,
    }
    plausible = Plausibility.from_settings(settings)
    plain = plain_inputs(ids, now, version, columns, schema)  # plainly valid: no validate
    checked = Validated(plain) if plain is not None else None
    if checked is None:
        checked = validate(_table({**base, **columns}), schema, now=now, plausible=plausible)
    if checked.rejected:
        store.quarantine_add(model, checked.rejected)
        raise InputError(
            f"{len(checked.rejected)} of {n} rows fail the schema of {version!r}: "
            + _reasons(checked.rejected)
        )
    try:
        loaded = served.get(model, version)
        missing = [f for f in loaded.features if f not in columns]
        if missing:
            raise InputError(f"the request lacks the model's input(s) {missing}")
    except Exception as exc:
        reason = {"field": "input" if isinstance(exc, InputError) else "model", "problem": str(exc)}
        store.quarantine_add(model, _quarantined(_table({**base, **columns}), reason))
        raise
    arrays = {f: _array(columns[f], schema, f) for f in loaded.features}
    start = time.perf_counter()
    try:
        scored = loaded.predict(arrays)
    except Exception as exc:
        latency = (time.perf_counter() - start) * 1000
        failed: dict[str, list[Any]] = {
            "latency_ms": [latency] * n,
            "status": ["error"] * n,
            "error": [str(exc)] * n,
        }
        accept_table(store, settings, model, _table({**base, **columns, **failed}))
        raise ModelLoadError(
            f"model {model!r} version {version!r} failed to score the request: {exc}"
        ) from exc
    latency = (time.perf_counter() - start) * 1000
    outputs = {**_outputs(scored, schema), "latency_ms": [latency] * n, "status": ["ok"] * n}
    logged = with_outputs(
        checked.accepted,
        schema,
        outputs,
        inputs=[*base, *columns],
        positive_score=info.positive_score,
        plausible=plausible,
    )
    if logged is None:  # an output the log cannot hold as it is: the whole ingest path
        accept_table(store, settings, model, _table({**base, **columns, **outputs}))
    else:
        flagged = {w["prediction_id"] for w in checked.warnings}
        if served.events is not None:
            served.events.put(Record(model, version, logged, frozenset(flagged)))
        else:  # serving_log = "sync": committed before the answer
            log_batch(store, model, version, logged, flagged)
    scored_request = ScoredRequest(model, version, columns, ids, scored.predictions, latency)
    for hook in served.after_score:
        try:
            hook(scored_request)
        except Exception:  # a copy for a challenger never fails the champion's answer
            log.exception("after_score hook %r failed on %s %s", hook, model, version)
    return Answer(model, version, ids, scored.predictions, scored.scores, scored.classes, latency)


def _check_backlog(served: ServedModels) -> None:
    """:class:`Overloaded` (503) while too many events wait to be processed: those logged
    (read at most every second) and those answered but not committed yet."""
    waiting = served.events.pending() if served.events is not None else 0
    check_backlog(served.store, served.settings, served.meta.pending_events() + waiting)


def predict_rows(
    served: ServedModels, model: str, version: str, columns: dict[str, list[Any]]
) -> tuple[Scored, float]:
    """What ``version`` answers for the rows, logged nowhere (a shadow challenger's copy), and
    the milliseconds the model took (as the champion's latency is measured: loading the
    model and converting the inputs are not counted)."""
    schema: Schema = served.meta.version(model, version).schema
    loaded = served.get(model, version)
    missing = [f for f in loaded.features if f not in columns]
    if missing:
        raise InputError(f"the request lacks the model's input(s) {missing}")
    arrays = {f: _array(columns[f], schema, f) for f in loaded.features}
    start = time.perf_counter()
    scored = loaded.predict(arrays)
    return scored, (time.perf_counter() - start) * 1000


def _rows(columns: dict[str, list[Any]]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if not lengths:
        raise InputError("the request has no inputs")
    if len(set(lengths.values())) > 1:
        raise InputError(f"inputs of different lengths: {lengths}")
    return next(iter(lengths.values()))


def _ids(given: list[str] | None, n: int) -> list[str]:
    if given is None:
        return [uuid.uuid4().hex for _ in range(n)]
    if not isinstance(given, list) or not all(isinstance(i, str | int) for i in given):
        raise InputError("prediction_ids: expected a list of strings, one per row")
    if len(given) != n:
        raise InputError(f"prediction_ids: {len(given)} ids for {n} rows")
    return [str(i) for i in given]


def _table(columns: dict[str, list[Any]]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays)


def _array(values: list[Any], schema: Schema, name: str) -> np.ndarray[Any, Any]:
    column = schema.columns.get(name)
    if column is not None and column.type == ColumnType.NUMERIC:
        return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.asarray([category_text(v) for v in values], dtype=object)  # True -> "true"


def _outputs(scored: Scored, schema: Schema) -> dict[str, list[Any]]:
    """The prediction (as the schema's prediction column types it) and a score per class."""
    numeric = any(c.type == ColumnType.NUMERIC for c in schema.by_role(Role.PREDICTION))
    predictions = [
        None if p is None else (float(p) if numeric else str(p)) for p in scored.predictions
    ]
    out: dict[str, list[Any]] = {"prediction": predictions}
    if scored.scores is not None:
        for j, label in enumerate(scored.classes):
            out[f"score.{label}"] = scored.scores[:, j].tolist()
    return out


def _quarantined(events: pa.Table, reason: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "prediction_id": row["prediction_id"],
            "event": {
                k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                for k, v in row.items()
            },
            "reasons": [reason],
        }
        for i, row in enumerate(events.to_pylist())
    ]


def _reasons(rejected: list[dict[str, Any]]) -> str:
    parts = [
        f"row {r['index']}: " + "; ".join(f"{x['field']}: {x['problem']}" for x in r["reasons"])
        for r in rejected[:MAX_REASONS]
    ]
    more = len(rejected) - MAX_REASONS
    return " | ".join(parts) + (f" | and {more} more" if more > 0 else "")
