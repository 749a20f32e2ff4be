"""A model's history: every step of its life as one list of events, newest first.

The steps are read from where they are recorded, not copied into a table of their own, so the
history cannot disagree with them: a version registered (``wk_model_versions``), each state an
alert of the model entered (``wk_alert_events``: pending, firing, resolved, cancelled), and each
action an alert started (``wk_retrain_jobs``: queued, then started, then how it ended), each
change of a version's state (``wk_promotions``: a challenger's shadow or canary start, a
promotion, a rollback, a retirement) and each verdict on a challenger (``wk_verdicts``, with
its evidence). Each step appears once; events at the same time keep the order they happened
in.

>>> HISTORY_KINDS[:3]
('version_registered', 'alert_pending', 'alert_firing')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import tables as t

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

ENDINGS = ("succeeded", "failed", "timeout", "skipped")
PROMOTION_ACTIONS = ("shadow_started", "canary_started", "promoted", "rolled_back", "retired")
HISTORY_KINDS: tuple[str, ...] = (
    "version_registered",
    *(f"alert_{s}" for s in ("pending", "firing", "resolved", "cancelled")),
    "action_queued",
    "action_started",
    *(f"action_{s}" for s in ENDINGS),
    *PROMOTION_ACTIONS,
    "verdict",
)


def history(
    store: Store,
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    kinds: Iterable[str] | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The model's events with ``since <= at < until``, newest first, at most ``limit``;
    ``kinds`` (of :data:`HISTORY_KINDS`) keeps only those."""
    wanted = set(kinds) if kinds is not None else set(HISTORY_KINDS)
    with store.engine.connect() as conn:
        events = [
            e
            for e in (
                *_versions(conn, model, since, until),
                *_alerts(conn, model, since, until),
                *_actions(conn, model, since, until),
                *_promotions(conn, model, since, until),
                *_verdicts(conn, model, since, until),
            )
            if e["kind"] in wanted
            and (since is None or e["at"] >= since)
            and (until is None or e["at"] < until)
        ]
    events.sort(key=lambda e: (e["at"], e.pop("_order")), reverse=True)
    return events[:limit]


def _between(column: Any, since: float | None, until: float | None) -> Any:
    clause = sa.true()
    if since is not None:
        clause &= column >= since
    if until is not None:
        clause &= column < until
    return clause


def _versions(
    conn: sa.Connection, model: str, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    v = t.versions.c
    rows = conn.execute(
        sa.select(v.version, v.created_at, v.reference_rows).where(
            (v.model == model) & _between(v.created_at, since, until)
        )
    )
    for r in rows:
        yield {
            "at": float(r.created_at),
            "kind": "version_registered",
            "version": r.version,
            "summary": f"version {r.version} registered with a reference of "
            f"{r.reference_rows:,} rows",
            "detail": {"reference_rows": r.reference_rows},
            "_order": (0, 0),
        }


def _alerts(
    conn: sa.Connection, model: str, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    a, e = t.alerts.c, t.alert_events.c
    rows = conn.execute(
        sa.select(
            e.id, e.at, e.state, e.value, e.message, a.id.label("alert_id"), a.monitor,
            a.target, a.version, a.severity, a.metric,
        )
        .select_from(t.alert_events.join(t.alerts, a.id == e.alert_id))
        .where((a.model == model) & _between(e.at, since, until))
    )  # fmt: skip
    for r in rows:
        yield {
            "at": float(r.at),
            "kind": f"alert_{r.state}",
            "version": r.version,
            "summary": r.message,
            "detail": {
                "alert_id": r.alert_id,
                "monitor": r.monitor,
                "target": r.target,
                "severity": r.severity,
                "metric": r.metric,
                "value": r.value,
            },
            "_order": (1, r.id),
        }


def _actions(
    conn: sa.Connection, model: str, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    j = t.retrain_jobs.c
    rows = conn.execute(
        sa.select(
            j.id, j.version, j.alert_id, j.monitor, j.kind, j.status, j.created_at,
            j.started_at, j.finished_at, j.duration, j.exit_code, j.error, j.rows,
        ).where(
            (j.model == model)
            & (
                _between(j.created_at, since, until)
                | _between(j.started_at, since, until)
                | _between(j.finished_at, since, until)
            )
        )
    )  # fmt: skip
    for r in rows:
        what = "retraining" if r.kind == "retrain" else "webhook"
        detail = {"job_id": r.id, "alert_id": r.alert_id, "monitor": r.monitor, "action": r.kind}
        base = {"version": r.version, "detail": detail}
        if r.status != "skipped":
            yield {
                **base,
                "at": float(r.created_at),
                "kind": "action_queued",
                "summary": f"{what} job {r.id} queued by alert {r.alert_id}",
                "_order": (2, r.id, 0),
            }
        if r.started_at is not None:
            yield {
                **base,
                "at": float(r.started_at),
                "kind": "action_started",
                "summary": f"{what} job {r.id} started"
                + (f" on {r.rows:,} rows" if r.rows else ""),
                "_order": (2, r.id, 1),
            }
        if r.status in ENDINGS:
            ended = {**detail, "exit_code": r.exit_code, "duration": r.duration, "error": r.error}
            yield {
                **base,
                "detail": ended,
                "at": float(r.finished_at if r.finished_at is not None else r.created_at),
                "kind": f"action_{r.status}",
                "summary": f"{what} job {r.id} {r.status}" + (f": {r.error}" if r.error else ""),
                "_order": (2, r.id, 2),
            }


def _promotions(
    conn: sa.Connection, model: str, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    p = t.promotions.c
    rows = conn.execute(
        sa.select(p.id, p.at, p.action, p.version, p.previous, p.detail).where(
            (p.model == model) & _between(p.at, since, until)
        )
    )
    for r in rows:
        detail = {**(r.detail or {}), "previous": r.previous}
        if r.action == "shadow_started":
            summary = f"version {r.version} started in shadow"
        elif r.action == "canary_started":
            summary = f"version {r.version} started as a canary on {detail.get('share', 0):.0%}"
        elif r.action == "promoted":
            summary = f"version {r.version} promoted to champion, replacing {r.previous}"
        elif r.action == "rolled_back":
            summary = f"rolled back to version {r.version}, retiring {r.previous}"
        else:
            summary = f"version {r.version} retired"
        if detail.get("verdict_id") is not None:
            summary += f" on verdict {detail['verdict_id']}"
        yield {
            "at": float(r.at),
            "kind": r.action,
            "version": r.version,
            "summary": summary,
            "detail": detail,
            "_order": (3, r.id),
        }


def _verdicts(
    conn: sa.Connection, model: str, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    v = t.verdicts.c
    rows = conn.execute(
        sa.select(v.id, v.at, v.champion, v.challenger, v.decision, v.evidence).where(
            (v.model == model) & _between(v.at, since, until)
        )
    )
    for r in rows:
        e = r.evidence
        yield {
            "at": float(r.at),
            "kind": "verdict",
            "version": r.challenger,
            "summary": f"verdict {r.id} on {r.challenger} against {r.champion}: {r.decision} "
            f"({e['metric']} {e['challenger']:.4g} vs {e['champion']:.4g} on {e['n']:,} "
            f"labelled requests, p = {e['p_value']:.3g})",
            "detail": {"verdict_id": r.id, "decision": r.decision, "champion": r.champion, **e},
            "_order": (2.5, r.id),
        }
