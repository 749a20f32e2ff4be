"""Models of the alert routes: monitors, alerts, silences, deliveries, retrain jobs."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from watchkeeper.alerts.kinds import KINDS
from watchkeeper.server.schemas import In, Out


# ---------------------------------------------------------------------------- monitors
class _MonitorFields(In):
    name: str = Field(description="1-200 letters, digits, '.', '_' or '-'")
    model: str
    metric: str = Field(description="a window metric (count, accuracy, drifted_share, ...)")
    feature: str | None = None
    version: str | None = None
    segment: str | None = None
    severity: str | None = Field(None, description="warning or critical")
    min_samples: int | None = None
    for_windows: int | None = None
    resolve_windows: int | None = None
    hysteresis: Any = None
    cooldown: str | float | None = None
    notify: list[str] | None = None
    actions: list[dict[str, Any]] | None = None
    description: str | None = None


# One optional field per registered kind (alerts/kinds.py): a new kind needs no change here.
_KIND_FIELDS: dict[str, Any] = {
    kind: (Any, Field(None, description=f"the {kind} kind's options")) for kind in KINDS
}
MonitorSpec = create_model(
    "MonitorSpec",
    __base__=_MonitorFields,
    __doc__=(
        "A monitor as in the settings file (docs/alerts.md#monitors), with exactly one of "
        f"{', '.join(KINDS)}. The service checks it and names the field at fault (400)."
    ),
    **_KIND_FIELDS,
)


class AlertRef(Out):
    id: int
    state: str


class MonitorTarget(Out):
    target: str
    version: str | None = None
    window_start: int | None = None
    value: float | None = None
    sample_size: int | None = None
    breach: bool | None = None
    detail: Any = None
    alert: AlertRef | None = None


class MonitorOut(Out):
    name: str
    source: str = Field(description="config (the settings file) or api")
    kind: str
    spec: dict[str, Any]
    targets: list[MonitorTarget]


class MonitorList(Out):
    monitors: list[MonitorOut]


# ---------------------------------------------------------------------------- alerts
class Alert(Out):
    id: int
    monitor: str
    model: str
    version: str
    segment: str
    target: str
    severity: str
    state: str = Field(description="pending, firing, resolved or cancelled")
    metric: str
    value: float | None
    condition: str
    threshold: float | None
    window_start: int
    window_seconds: int
    sample_size: int | None
    top_features: list[Any]
    started_at: float | None
    resolved_at: float | None
    summary: str
    url: str | None = Field(description="<public_url>/v1/alerts/<id> when public_url is set")
    created_at: float
    updated_at: float
    notified: str | None
    detail: dict[str, Any]


class AlertList(Out):
    alerts: list[Alert]


class AlertEvent(Out):
    at: float
    state: str
    value: float | None
    window_start: int | None
    message: str


class Delivery(Out):
    id: int
    alert_id: int
    transition: str
    notifier: str
    status: str = Field(description="pending, sent, failed or silenced")
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    duration: float | None


class DeliveryList(Out):
    deliveries: list[Delivery]


class Job(Out):
    id: int
    model: str
    version: str
    alert_id: int
    monitor: str
    kind: str = Field(description="retrain or webhook")
    status: str
    action: Any
    dataset: str | None
    rows: int | None
    window_start: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration: float | None
    exit_code: int | None
    error: str | None


class JobWithLog(Job):
    log: str


class JobList(Out):
    jobs: list[Job]


class AlertWithHistory(Alert):
    history: list[AlertEvent]
    deliveries: list[Delivery]
    jobs: list[Job]


# ---------------------------------------------------------------------------- silences
class SilenceIn(In):
    """Exactly one of ``duration`` and ``expires_at``."""

    matchers: dict[str, str] = Field(description='label → glob, e.g. {"model": "churn*"}')
    duration: str | float | None = Field(None, description='"2h", "30m" or seconds')
    expires_at: float | None = Field(None, description="Unix seconds, in the future")
    comment: str = ""
    created_by: str = ""


class Silence(Out):
    id: int
    matchers: dict[str, Any]
    comment: str
    created_by: str
    created_at: float
    starts_at: float
    expires_at: float
    active: bool


class SilenceList(Out):
    silences: list[Silence]
