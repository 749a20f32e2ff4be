"""Models of the ingest and model routes: predictions, actuals, CloudEvents, registration,
status, metric series, quarantine."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from watchkeeper.server.schemas import In, Out

Scalar = str | float | int | bool | None
Time = float | str | None


# ---------------------------------------------------------------------------- predictions
class PredictionEvent(In):
    """One prediction (row JSON). Features and segments are validated against the version's
    schema; fields not in it are ignored and named in ``ignored_fields``."""

    model_config = In.model_config | {"extra": "allow"}

    prediction_id: str | int = Field(description="idempotency key; labels join on it")
    timestamp: Time = Field(None, description="event time: epoch seconds or ISO 8601")
    version: str | None = Field(None, description="the model version; default the champion")
    features: dict[str, Scalar] = Field(default_factory=dict)
    prediction: Scalar = None
    scores: dict[str, float | None] | None = Field(None, description="class → probability")
    latency_ms: float | None = None
    status: str | None = Field(None, description="ok or error")
    error: str | None = Field(None, description="an error message (a failed request)")
    segments: dict[str, Scalar] | None = None


class PredictionRows(In):
    """Row JSON: ``{"events": [event, ...]}`` (a bare list of events is accepted too)."""

    events: list[PredictionEvent]


class PredictionColumns(In):
    """Columnar JSON: a list per field (``features``, ``segments``, ``scores``: a list per
    name), all of one length."""

    model_config = In.model_config | {"extra": "allow"}

    prediction_id: list[str | int]
    timestamp: list[Time] | None = None
    version: list[str | None] | None = None
    features: dict[str, list[Scalar]] = Field(default_factory=dict)
    prediction: list[Scalar] | None = None
    scores: dict[str, list[float | None]] | None = None
    latency_ms: list[float | None] | None = None
    status: list[str | None] | None = None
    error: list[str | None] | None = None
    segments: dict[str, list[Scalar]] | None = None


class Reason(Out):
    field: str = Field(description="the field (or column) at fault; empty for the whole event")
    problem: str


class RejectedEvent(Out):
    index: int = Field(description="the event's position in the batch")
    prediction_id: Any = None
    reasons: list[Reason]


class IngestResponse(Out):
    accepted: int = Field(description="events written to the durable log")
    duplicates: int = Field(description="events whose prediction_id was seen already")
    rejected: int = Field(description="events quarantined")
    errors: list[RejectedEvent]
    ignored_fields: list[str]


# ---------------------------------------------------------------------------- actuals
class Actual(In):
    model_config = In.model_config | {"extra": "allow"}

    prediction_id: str | int | float
    label: str | int | float | bool
    timestamp: Time = None


class ActualsBody(In):
    """``{"actuals": [...]}`` (a bare list is accepted too). A label without ``prediction_id``
    or ``label`` is rejected alone, with its reason."""

    actuals: list[Actual]


class ActualsResponse(Out):
    matched: int
    unmatched: int = Field(description="stored; joined when the prediction arrives")
    late: int = Field(description="past the label horizon")
    duplicates: int
    rejected: int
    errors: list[RejectedEvent]


# ---------------------------------------------------------------------------- window profiles
class ProfileResponse(Out):
    model: str
    version: str
    window_start: int = Field(description="the start of the window the profile went to (Unix s)")
    window_seconds: int
    rows: int = Field(description="the rows of the pushed profile")
    window_rows: int = Field(description="the window's rows now, logged and pushed")


# ---------------------------------------------------------------------------- CloudEvents
class CloudEvent(In):
    """A structured-mode CloudEvent (``application/cloudevents+json``); in binary mode the
    attributes are ``ce-*`` headers and the body is the data."""

    model_config = In.model_config | {"extra": "allow"}

    id: str
    type: str = Field(description="ending in .request or .response")
    source: str | None = None
    specversion: str | None = None
    data: Any = None
    data_base64: str | None = None


class CloudEventResponse(Out):
    status: str = Field(description="waiting (for the other half) or joined")
    id: str
    kind: str | None = Field(None, description="request or response, while waiting")
    accepted: int | None = None
    duplicates: int | None = None
    rejected: int | None = None
    errors: list[RejectedEvent] | None = None
    ignored_fields: list[str] | None = None


# ---------------------------------------------------------------------------- models
class Health(Out):
    status: str
    version: str
    replica: str = Field(
        "", description="this process's replica id (replica_id; default hostname-pid)"
    )
    leases: list[str] = Field(
        [],
        description="the background roles this replica holds now (evaluator, jobs); one "
        "replica holds each (store/leases.py)",
    )


class ModelList(Out):
    models: list[str]


class ColumnRole(Out):
    name: str
    role: str = Field(
        description="feature, prediction, score, target, id, timestamp, segment or ignored"
    )
    type: str = Field(description="numeric, categorical, datetime, text or id")
    reason: str = Field(description="why the column has this role, e.g. 'given as target'")


class Registered(Out):
    model: str
    version: str
    reference_rows: int
    schema_: dict[str, Any] = Field(alias="schema", description="the inferred column schema")
    roles: list[ColumnRole] = Field(description="each column's role and why, in column order")


class VersionInfo(Out):
    version: str
    created_at: float
    reference_rows: int


class WindowMetric(Out):
    metric: str
    feature: str
    value: float | None
    detail: Any = None


class LatestWindow(Out):
    version: str
    window_start: int
    window_seconds: int
    evaluated_at: float
    summary: Any
    metrics: list[WindowMetric]


class ModelStatus(Out):
    model: str
    champion: str | None
    versions: list[VersionInfo]
    segments: list[str]
    window_seconds: int
    drift_reference: str
    events_total: int
    quarantined_total: int
    violations_total: int = Field(
        0, description="events accepted although they break a validation rule (count policy)"
    )
    duplicates_total: int
    actuals_total: int
    actuals_unmatched_total: int
    actuals_late_total: int
    dead_lettered_batches_total: int = Field(
        description="logged batches the processor could not process: see dead-letters"
    )
    dead_lettered_events_total: int
    dead_letters_waiting: int = Field(
        0, description="dead-lettered batches neither replayed nor deleted yet"
    )
    events_pending: int
    last_event_time: float | None
    created_at: float
    now: float
    latest_window: LatestWindow | None


DETAIL = (
    "what the metric says besides its value: a drift statistic's threshold, decision and "
    "method; a performance metric's confidence interval {low, high, level, method, n, reason} "
    "(docs/service.md#performance-intervals-and-the-training-baseline)"
)


class MetricPoint(Out):
    version: str
    segment: str
    window_start: int
    window_seconds: int
    value: float | None
    detail: Any = Field(None, description=DETAIL)


class Baseline(Out):
    """A performance metric over the labelled rows of a version's training reference."""

    version: str
    value: float | None
    detail: Any = Field(None, description="its confidence interval, as a point's")


class MetricSeries(Out):
    model: str
    metric: str
    feature: str
    points: list[MetricPoint]
    baseline: list[Baseline] = Field(
        default_factory=list,
        description="a performance metric's training baseline, per version whose reference "
        "had the target and the prediction (empty for other metrics)",
    )


class QuarantinedEvent(Out):
    id: int
    model: str
    received_at: float
    prediction_id: str | None
    event: Any
    reasons: list[Any]


class Quarantine(Out):
    model: str
    items: list[QuarantinedEvent]


class DeadBatch(Out):
    id: int
    model: str
    version: str
    batch_id: int = Field(description="the batch's id in the durable log")
    received_at: float
    events: int
    attempts: int = Field(description="failures in a row before it was moved here")
    error: str = Field(description="the last error: its type and message")
    dead_at: float
    payload_bytes: int = Field(description="size of the logged payload, kept in the database")


class DeadLetters(Out):
    model: str
    items: list[DeadBatch]


class ReplayedDeadLetter(Out):
    id: int = Field(description="the dead letter's id (now gone from the dead letters)")
    batch_id: int = Field(description="the new batch's id in the durable log")
    events: int


class HistoryEvent(Out):
    at: float = Field(description="when it happened (Unix seconds)")
    kind: str = Field(description="version_registered, alert_<state> or action_<status>")
    version: str
    summary: str
    detail: dict[str, Any]


class History(Out):
    model: str
    events: list[HistoryEvent] = Field(description="newest first")
