"""Read-only queries over the alert tables, for the API, the dashboard and ``/metrics``.

``alert_dict(row)`` is the one shape of an alert: the fields every notifier reads (see
``docs/alerts.md``) plus ``created_at``, ``updated_at``, ``detail`` and ``notified``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

STATES = ("pending", "firing", "resolved", "cancelled")
OPEN_STATES = ("pending", "firing")
MAX_LIMIT = 1000


def alert_dict(row: Mapping[Any, Any], public_url: str = "") -> dict[str, Any]:
    """The alert as notifiers and the API see it."""
    detail = dict(row.get("detail") or {})
    base = public_url.rstrip("/")
    return {
        "id": int(row["id"]),
        "monitor": row["monitor"],
        "model": row["model"],
        "version": row["version"],
        "segment": row["segment"],
        "target": row["target"],
        "severity": row["severity"],
        "state": row["state"],
        "metric": row["metric"],
        "value": row["value"],
        "condition": row["condition"],
        "threshold": row["threshold"],
        "window_start": int(row["window_start"]),
        "window_seconds": int(row["window_seconds"]),
        "sample_size": row["sample_size"],
        "top_features": detail.get("top_features", []),
        "started_at": row["started_at"],
        "resolved_at": row["resolved_at"],
        "summary": row["summary"],
        "url": f"{base}/v1/alerts/{int(row['id'])}" if base else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "notified": row["notified"],
        "detail": detail,
    }


def _limit(limit: int) -> int:
    return max(0, min(int(limit), MAX_LIMIT))


def list_alerts(
    store: Store,
    *,
    model: str | None = None,
    state: str | None = None,
    monitor: str | None = None,
    severity: str | None = None,
    limit: int = 100,
    offset: int = 0,
    public_url: str = "",
) -> list[dict[str, Any]]:
    """Alerts, newest first. ``state`` is one of STATES or ``open`` (pending or firing)."""
    a = t.alerts.c
    q = sa.select(t.alerts)
    if model is not None:
        q = q.where(a.model == model)
    if state == "open":
        q = q.where(a.state.in_(OPEN_STATES))
    elif state is not None:
        q = q.where(a.state == state)
    if monitor is not None:
        q = q.where(a.monitor == monitor)
    if severity is not None:
        q = q.where(a.severity == severity)
    q = q.order_by(a.id.desc()).limit(_limit(limit)).offset(max(0, offset))
    with store.engine.connect() as conn:
        return [alert_dict(r, public_url) for r in conn.execute(q).mappings()]


def get_alert(store: Store, alert_id: int, *, public_url: str = "") -> dict[str, Any]:
    """One alert with its history (state changes), deliveries and actions."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        ev = t.alert_events.c
        history = [
            {k: r[k] for k in ("at", "state", "value", "window_start", "message")}
            for r in conn.execute(
                sa.select(t.alert_events).where(ev.alert_id == alert_id).order_by(ev.id)
            ).mappings()
        ]
    out = alert_dict(row, public_url)
    out["history"] = history
    out["deliveries"] = list_deliveries(store, alert_id=alert_id)
    out["jobs"] = list_jobs(store, alert_id=alert_id)
    return out


def _delivery(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {k: row[k] for k in row if k != "payload"}


def list_deliveries(
    store: Store,
    *,
    alert_id: int | None = None,
    status: str | None = None,
    notifier: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Outbox rows (without their payload), newest first."""
    d = t.deliveries.c
    q = sa.select(t.deliveries)
    if alert_id is not None:
        q = q.where(d.alert_id == alert_id)
    if status is not None:
        q = q.where(d.status == status)
    if notifier is not None:
        q = q.where(d.notifier == notifier)
    q = q.order_by(d.id.desc()).limit(_limit(limit)).offset(max(0, offset))
    with store.engine.connect() as conn:
        return [_delivery(r) for r in conn.execute(q).mappings()]


def _job(row: Mapping[Any, Any], *, log: bool) -> dict[str, Any]:
    out = {k: row[k] for k in row if k not in ("running_key", "log")}
    if log:
        out["log"] = row["log"]
    return out


def list_jobs(
    store: Store,
    *,
    model: str | None = None,
    status: str | None = None,
    alert_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Retraining and webhook action jobs (without their log), newest first."""
    j = t.retrain_jobs.c
    q = sa.select(t.retrain_jobs)
    if model is not None:
        q = q.where(j.model == model)
    if status is not None:
        q = q.where(j.status == status)
    if alert_id is not None:
        q = q.where(j.alert_id == alert_id)
    q = q.order_by(j.id.desc()).limit(_limit(limit)).offset(max(0, offset))
    with store.engine.connect() as conn:
        return [_job(r, log=False) for r in conn.execute(q).mappings()]


def get_job(store: Store, job_id: int) -> dict[str, Any]:
    """One job with its log."""
    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.select(t.retrain_jobs).where(t.retrain_jobs.c.id == job_id))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(f"retrain job {job_id} does not exist")
    return _job(row, log=True)


def firing_counts(store: Store) -> dict[tuple[str, str], int]:
    """(model, severity) → number of firing alerts."""
    a = t.alerts.c
    q = (
        sa.select(a.model, a.severity, sa.func.count())
        .where(a.state == "firing")
        .group_by(a.model, a.severity)
    )
    with store.engine.connect() as conn:
        return {(m, s): int(n) for m, s, n in conn.execute(q)}


def delivery_failures(store: Store) -> dict[str, int]:
    """Notifier → failed delivery attempts so far (an attempt that sent is not a failure)."""
    d = t.deliveries.c
    failed = d.attempts - sa.case((d.status == "sent", 1), else_=0)
    q = sa.select(d.notifier, sa.func.coalesce(sa.func.sum(failed), 0)).group_by(d.notifier)
    with store.engine.connect() as conn:
        return {name: int(n) for name, n in conn.execute(q)}
