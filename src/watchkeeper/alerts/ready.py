"""The ``ready_to_promote`` alert: a challenger that a verdict found better, under a ``manual``
promotion policy, waits for an admin — who is told through the alert machinery.

After each pass the engine calls :func:`sync`. A shadow challenger whose latest verdict (against
the current champion) decided ``ready`` gets one alert, raised firing at once: the monitor
column reads ``ready_to_promote`` (a name no monitor may take), the target is the challenger,
the value its metric, and the summary and ``detail`` name the model, the challenger, the
champion, both metric values with their 95 % intervals, the difference, n, the p-value and how
to promote (``watchkeeper promote MODEL VERSION``, ``POST /v1/models/{model}/promote``). It is
sent as any alert is: to every notifier whose routing takes it, held while a silence matches,
through the outbox. One open alert per challenger (its open key): more looks at the data that
say ``ready`` again raise nothing new. It resolves, to whoever got it, once the challenger is
promoted, retired or no longer a challenger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts import outbox
from watchkeeper.alerts.lifecycle import Lifecycle
from watchkeeper.alerts.monitors import READY
from watchkeeper.alerts.queries import alert_dict
from watchkeeper.alerts.silences import active_silences, silenced_by
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

SEVERITY = "warning"


def sync(store: Store, lifecycle: Lifecycle, now: float) -> bool:
    """Raise the alert of each ready challenger that has none open, resolve those whose
    challenger moved on; True when notices were enqueued."""
    a, vs = t.alerts.c, t.version_states.c
    with store.engine.connect() as conn:  # read first: a write locks SQLite
        open_ = {
            r["open_key"]: dict(r)
            for r in conn.execute(
                sa.select(t.alerts).where((a.monitor == READY) & a.open_key.is_not(None))
            ).mappings()
        }
        challengers = {
            (r.model, r.version): r.mode
            for r in conn.execute(
                sa.select(vs.model, vs.version, vs.mode).where(vs.state == "challenger")
            )
        }
        shadows = sorted(c for c, mode in challengers.items() if mode == "shadow")
        ready = [v for m, c in shadows if (v := _ready(conn, m, c)) is not None]
    enqueued = False
    raise_ = [v for v in ready if key(v["model"], v["challenger"]) not in open_]
    done = [r for r in open_.values() if (r["model"], r["target"]) not in challengers]
    if not raise_ and not done:
        return False
    with store.write() as conn:
        for verdict in raise_:
            enqueued |= _fire(conn, lifecycle, verdict, now)
        for row in done:
            why = _moved_on(conn, row["model"], row["target"])
            enqueued |= lifecycle.close(conn, row, "resolved", None, now, why)
    return enqueued


def key(model: str, challenger: str) -> str:
    """The open key of a challenger's alert (one open at a time)."""
    return f"{READY}/{model}/{challenger}"


def _ready(conn: sa.Connection, model: str, challenger: str) -> dict[str, Any] | None:
    """The latest verdict on ``challenger`` when it decided ``ready`` against the current
    champion, else None."""
    v, m = t.verdicts.c, t.models.c
    row = (
        conn.execute(
            sa.select(t.verdicts)
            .where((v.model == model) & (v.challenger == challenger))
            .order_by(v.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None or row["decision"] != "ready":
        return None
    champion = conn.execute(sa.select(m.champion).where(m.name == model)).scalar()
    return dict(row) if champion == row["champion"] else None


def _moved_on(conn: sa.Connection, model: str, version: str) -> str:
    m, vs = t.models.c, t.version_states.c
    if conn.execute(sa.select(m.champion).where(m.name == model)).scalar() == version:
        return f"{version} was promoted: it is the champion of {model}"
    state = conn.execute(
        sa.select(vs.state).where((vs.model == model) & (vs.version == version))
    ).scalar()
    if state == "retired":
        return f"{version} was retired"
    return f"{version} is no longer a challenger of {model}"


def _fire(
    conn: sa.Connection, lifecycle: Lifecycle, verdict: Mapping[str, Any], now: float
) -> bool:
    model, challenger = verdict["model"], verdict["challenger"]
    e = verdict["evidence"]
    window = conn.execute(
        sa.select(t.models.c.window_seconds).where(t.models.c.name == model)
    ).scalar()
    promote = {
        "cli": f"watchkeeper promote {model} {challenger}",
        "api": f'POST /v1/models/{model}/promote {{"version": "{challenger}"}}',
    }
    detail = {
        "kind": READY,
        "verdict_id": verdict["id"],
        "champion": verdict["champion"],
        "challenger": challenger,
        "metric": e["metric"],
        "method": e["method"],
        "n": e["n"],
        "p_value": e["p_value"],
        "alpha": e.get("alpha"),
        "champion_value": e["champion"],
        "challenger_value": e["challenger"],
        "intervals": e.get("intervals", {}),
        "difference": e["difference"],
        "difference_interval": [e.get("ci_low"), e.get("ci_high")],
        "promote": promote,
    }
    text = summary(model, detail)
    row = {
        "monitor": READY,
        "target": challenger,
        "open_key": key(model, challenger),
        "model": model,
        "version": challenger,
        "segment": "",
        "severity": SEVERITY,
        "state": "firing",
        "metric": str(e["metric"]),
        "value": e["challenger"],
        "condition": f"better than {verdict['champion']} (p={_num(e['p_value'])})"[:400],
        "threshold": None,
        "window_start": int(verdict["at"]),
        "window_seconds": int(window or 0),
        "sample_size": int(e["n"]),
        "detail": detail,
        "summary": text[:1000],
        "notified": None,
        "created_at": now,
        "started_at": now,
        "resolved_at": None,
        "updated_at": now,
    }
    alert_id = int(conn.execute(t.alerts.insert().values(**row)).inserted_primary_key[0])  # type: ignore[index]
    conn.execute(
        t.alert_events.insert().values(
            alert_id=alert_id, at=now, state="firing", value=row["value"], window_start=None,
            message=row["summary"],
        )
    )  # fmt: skip
    stored = conn.execute(sa.select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().one()
    payload = alert_dict(stored, lifecycle.public_url)
    silenced = bool(silenced_by(payload, active_silences(lifecycle.store, conn, now)))
    names = list(lifecycle.notifiers)
    outbox.enqueue(conn, payload, "firing", names, lifecycle.notifiers, silenced=silenced, now=now)
    if not silenced:
        conn.execute(t.alerts.update().where(t.alerts.c.id == alert_id).values(notified="firing"))
    return True


def summary(model: str, d: Mapping[str, Any]) -> str:
    """``churn: challenger v2 is ready to promote over champion v1 — accuracy 0.91 [0.88,
    0.94] vs 0.78 [0.74, 0.82] (difference +0.13 [0.08, 0.18]), n=400, p=2.1e-07
    (mcnemar-chi2); promote: watchkeeper promote churn v2, or POST ...``"""
    intervals = d["intervals"]
    low, high = d["difference_interval"]
    diff = f"{d['difference']:+.4g}" + (
        f" [{_num(low)}, {_num(high)}]" if low is not None and high is not None else ""
    )
    return (
        f"{model}: challenger {d['challenger']} is ready to promote over champion "
        f"{d['champion']} — {d['metric']} {_num(d['challenger_value'])}"
        f"{_interval(intervals.get('challenger'))} vs {_num(d['champion_value'])}"
        f"{_interval(intervals.get('champion'))} (difference {diff}), n={d['n']}, "
        f"p={_num(d['p_value'])} ({d['method']}); promote: {d['promote']['cli']}, or "
        f"{d['promote']['api']}"
    )


def _interval(pair: Any) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return ""
    return f" [{_num(pair[0])}, {_num(pair[1])}]"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"
