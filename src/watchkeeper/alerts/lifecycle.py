"""The lifecycle of one target's alert, decided from its latest judged verdicts.

* no open alert and the latest window breaches → a ``pending`` alert;
* the latest ``for_windows`` judged windows all breach → ``firing`` (unless the previous alert
  of the same monitor and target resolved less than ``cooldown`` ago: it waits, pending);
* pending, and the latest window does not breach → ``cancelled`` (never notified);
* firing, and the latest ``resolve_windows`` judged windows are all healthy → ``resolved``.

One open (pending or firing) alert per monitor and target, enforced by a unique key. Each
transition is recorded in ``wk_alert_events``; going firing enqueues one delivery per routed
notifier (``silenced`` while a silence matches) and the monitor's actions; resolving enqueues
the resolution to the notifiers that got the firing notice. All in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts import outbox
from watchkeeper.alerts.monitors import Monitor
from watchkeeper.alerts.queries import alert_dict
from watchkeeper.alerts.silences import active_silences, silenced_by
from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

# the alerts of drift metrics name the window's top drift features
DRIFT_METRICS = tuple(n for n, m in CATALOGUE.items() if m.source == "drift")
TOP_FEATURES = 10


class Lifecycle:
    """Transitions of alerts; ``notifiers`` is shared with the engine (name → Notifier)."""

    def __init__(self, store: Store, notifiers: dict[str, Any], public_url: str = "") -> None:
        self.store, self.notifiers, self.public_url = store, notifiers, public_url

    def step(
        self, m: Monitor, window_seconds: int, version: str, segment: str, target: str, now: float
    ) -> bool:
        """Move the target's alert as its latest judged verdicts say (see the module
        docstring), in one write transaction; True when notices were enqueued."""
        mw, a = t.monitor_windows.c, t.alerts.c
        depth = max(m.for_windows, m.resolve_windows)
        with self.store.write() as conn:
            recent = (
                conn.execute(
                    sa.select(t.monitor_windows)
                    .where(
                        (mw.monitor == m.name)
                        & (mw.target == target)
                        & (mw.version == version)
                        & (mw.segment == segment)
                        & mw.breach.is_not(None)
                    )
                    .order_by(mw.window_start.desc())
                    .limit(depth)
                )
                .mappings()
                .all()
            )
            key = open_key(m.name, target)
            alert: Mapping[Any, Any] | None = (
                conn.execute(sa.select(t.alerts).where(a.open_key == key)).mappings().first()
            )
            if not recent:
                return False
            latest = recent[0]
            breaches = _streak(recent, "breach")
            if alert is None:
                if not latest["breach"]:
                    return False
                alert = self._open(conn, m, window_seconds, version, segment, target, latest, now)
            elif alert["state"] == "pending" and not latest["breach"]:
                self.close(
                    conn, alert, "cancelled", latest, now, "the condition cleared before firing"
                )
                return False
            elif alert["state"] == "firing":
                if _streak(recent, "healthy") >= m.resolve_windows:
                    return self.close(conn, alert, "resolved", latest, now, "recovered")
                if latest["breach"]:
                    self._update(conn, m, alert, latest, window_seconds, now)
                return False
            else:
                self._update(conn, m, alert, latest, window_seconds, now)
            if breaches < m.for_windows:
                return False
            last = conn.execute(
                sa.select(a.resolved_at)
                .where((a.monitor == m.name) & (a.target == target) & (a.state == "resolved"))
                .order_by(a.resolved_at.desc())
                .limit(1)
            ).scalar()
            if last is not None and now < last + m.cooldown:
                return False
            return self._fire(conn, m, alert["id"], now)

    def _facts(
        self,
        conn: sa.Connection,
        m: Monitor,
        row: Mapping[Any, Any],
        window_seconds: int,
        model: str,
    ) -> dict[str, Any]:
        """Alert columns from a verdict row: value, condition, window, sample size, summary."""
        detail = dict(row["detail"] or {})
        if m.metric in DRIFT_METRICS:
            detail["top_features"] = top_features(
                conn,
                model,
                row["version"],
                row["segment"],
                row["window_start"],
                window_seconds,
                row["target"],
            )
        condition = str(detail.get("condition", ""))
        return {
            "value": row["value"],
            "condition": condition[:400],
            "threshold": detail.get("threshold"),
            "window_start": row["window_start"],
            "window_seconds": window_seconds,
            "sample_size": row["sample_size"],
            "detail": detail,
            "summary": summary(
                m.metric,
                row["target"],
                row["value"],
                condition,
                row["window_start"],
                row["sample_size"],
                model,
                row["version"],
                row["segment"],
            ),
        }

    def _open(
        self,
        conn: sa.Connection,
        m: Monitor,
        window_seconds: int,
        version: str,
        segment: str,
        target: str,
        latest: Mapping[Any, Any],
        now: float,
    ) -> dict[str, Any]:
        facts = self._facts(conn, m, latest, window_seconds, m.model)
        row = {
            "monitor": m.name,
            "target": target,
            "open_key": open_key(m.name, target),
            "model": m.model,
            "version": version,
            "segment": segment,
            "severity": m.severity,
            "state": "pending",
            "metric": m.metric,
            "notified": None,
            "created_at": now,
            "started_at": None,
            "resolved_at": None,
            "updated_at": now,
            **facts,
        }
        new_id = conn.execute(t.alerts.insert().values(**row)).inserted_primary_key[0]  # type: ignore[index]
        _event(conn, int(new_id), "pending", latest, now, facts["summary"])
        return {"id": int(new_id), **row}

    def _update(
        self,
        conn: sa.Connection,
        m: Monitor,
        alert: Mapping[Any, Any],
        latest: Mapping[Any, Any],
        window_seconds: int,
        now: float,
    ) -> None:
        """An open alert follows its newest breaching window."""
        if latest["window_start"] == alert["window_start"] and latest["value"] == alert["value"]:
            return
        facts = self._facts(conn, m, latest, window_seconds, alert["model"])
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.id == alert["id"])
            .values(**facts, severity=m.severity, updated_at=now)
        )

    def _fire(self, conn: sa.Connection, m: Monitor, alert_id: int, now: float) -> bool:
        a = t.alerts.c
        conn.execute(
            t.alerts.update()
            .where(a.id == alert_id)
            .values(state="firing", started_at=now, updated_at=now)
        )
        row = conn.execute(sa.select(t.alerts).where(a.id == alert_id)).mappings().one()
        _event(conn, alert_id, "firing", row, now, row["summary"])
        payload = alert_dict(row, self.public_url)
        silenced = bool(silenced_by(payload, active_silences(self.store, conn, now)))
        names = list(self.notifiers) if m.notify is None else list(m.notify)
        outbox.enqueue(conn, payload, "firing", names, self.notifiers, silenced=silenced, now=now)
        if not silenced:
            conn.execute(t.alerts.update().where(a.id == alert_id).values(notified="firing"))
        if m.actions:
            from watchkeeper.alerts.retrain import enqueue_actions

            enqueue_actions(conn, m, payload, now)
        return True

    def close(
        self,
        conn: sa.Connection,
        alert: Mapping[Any, Any],
        state: str,
        latest: Mapping[Any, Any] | None,
        now: float,
        why: str,
    ) -> bool:
        """Resolve or cancel an open alert; a resolution goes to whoever got the firing."""
        a = t.alerts.c
        values: dict[str, Any] = {"state": state, "open_key": None, "updated_at": now}
        detail = dict(alert["detail"] or {})
        if state == "resolved":
            values["resolved_at"] = now
            if latest is not None:
                detail["resolved_by"] = {
                    k: latest.get(k) for k in ("value", "window_start", "sample_size", "version")
                }
            values["detail"] = detail
        notify = state == "resolved" and alert["notified"] == "firing"
        if notify:
            values["notified"] = "resolved"
        conn.execute(t.alerts.update().where(a.id == alert["id"]).values(**values))
        row = conn.execute(sa.select(t.alerts).where(a.id == alert["id"])).mappings().one()
        if latest is not None:
            # the window that resolves it may be another version's: a new champion's, after a
            # promotion (the monitor follows the champion), named as the version it measured
            version = latest.get("version") or row["version"]
            now_text = summary(
                row["metric"],
                row["target"],
                latest["value"],
                "",
                latest["window_start"],
                latest["sample_size"],
                row["model"],
                version,
                row["segment"],
            )
            if version != row["version"]:
                now_text += f", the champion since the alert on {row['version']}"
            text = f"{state}: {now_text}; was {row['condition']}"
        else:
            text = f"{state}: {why}; was {row['summary']}"
        _event(conn, int(alert["id"]), state, latest or {}, now, text)
        if notify:
            payload = alert_dict(row, self.public_url)
            payload["summary"] = text[:1000]
            if latest is not None:
                payload.update({k: latest[k] for k in ("value", "window_start", "sample_size")})
            outbox.enqueue_resolution(conn, payload, self.notifiers, now=now)
        return notify

    # ------------------------------------------------------------------------ housekeeping


def open_key(monitor: str, target: str) -> str:
    return f"{monitor}/{target}"


def _streak(rows: Sequence[Mapping[Any, Any]], key: str) -> int:
    n = 0
    for row in rows:
        if not row[key]:
            break
        n += 1
    return n


def _when(window_start: int) -> str:
    return datetime.fromtimestamp(window_start, UTC).strftime("%Y-%m-%d %H:%M")


def _event(
    conn: sa.Connection, alert_id: int, state: str, row: Mapping[Any, Any], now: float, message: str
) -> None:
    conn.execute(
        t.alert_events.insert().values(
            alert_id=alert_id,
            at=now,
            state=state,
            value=row.get("value"),
            window_start=row.get("window_start"),
            message=message[:1000],
        )
    )


def summary(
    metric: str,
    target: str,
    value: float | None,
    condition: str,
    window_start: int,
    n: int | None,
    model: str,
    version: str,
    segment: str,
) -> str:
    """``accuracy 0.78 <= 0.85 in window 2026-11-21 14:00 (n=412) on churn v1``.

    >>> summary("accuracy", "", 0.78, "<= 0.85", 1795269600, 412, "churn", "v1", "")
    'accuracy 0.78 <= 0.85 in window 2026-11-21 14:00 (n=412) on churn v1'
    >>> summary("missing_share", "age", 0.3, "", 1795269600, None, "churn", "v2", "country=DE")
    'missing_share of age 0.3 in window 2026-11-21 14:00 on churn v2 [country=DE]'
    """
    what = metric + (f" of {target}" if target else "")
    shown = "n/a" if value is None else f"{value:.4g}"
    if condition:
        shown += f" {condition}"
    where = f"{model} {version}" + (f" [{segment}]" if segment not in ("", "*") else "")
    size = "" if n is None else f" (n={n})"
    return f"{what} {shown} in window {_when(window_start)}{size} on {where}"[:1000]


def top_features(
    conn: sa.Connection,
    model: str,
    version: str,
    segment: str,
    window_start: int,
    window_seconds: int,
    target: str,
) -> list[dict[str, Any]]:
    """The window's drift features, drifted first and by effect size; ``target`` first."""
    mp = t.metric_points.c
    rows = conn.execute(
        sa.select(mp.feature, mp.value, mp.detail).where(
            (mp.model == model)
            & (mp.version == version)
            & (mp.segment == segment)
            & (mp.window_start == window_start)
            & (mp.window_seconds == window_seconds)
            & (mp.metric == "drift_statistic")
        )
    ).all()
    items = []
    for feature, value, detail in rows:
        d = detail or {}
        items.append(
            {
                "feature": feature,
                "statistic": value,
                "threshold": d.get("threshold"),
                "drifted": bool(d.get("drifted")),
                "effect_size": d.get("effect_size"),
                "method": d.get("method"),
            }
        )
    items.sort(
        key=lambda f: (
            f["feature"] != target,
            not f["drifted"],
            -(f["effect_size"] or 0.0),
            f["feature"],
        )
    )
    return items[:TOP_FEATURES]
