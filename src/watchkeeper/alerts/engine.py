"""The alert engine: after each evaluator pass, judge new windows and move alerts along.

Per monitor, the engine reads the windows evaluated since its cursor (``wk_evaluations``), writes
one verdict per target and window (:mod:`watchkeeper.alerts.verdicts`,
:mod:`watchkeeper.alerts.sequential`), and then lets each target's alert follow its latest
judged verdicts, in window order (:mod:`watchkeeper.alerts.lifecycle`) — so late labels that
re-evaluate an old window change only what they should. Housekeeping: alerts of removed
monitors resolve; a firing notice held by a silence goes out once no silence matches; old
verdicts are pruned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts import outbox, ready
from watchkeeper.alerts.catalog import Catalog, forget
from watchkeeper.alerts.kinds import KINDS
from watchkeeper.alerts.lifecycle import Lifecycle
from watchkeeper.alerts.monitors import READY, Monitor
from watchkeeper.alerts.queries import alert_dict
from watchkeeper.alerts.reference import reference_value
from watchkeeper.alerts.silences import active_silences, silenced_by
from watchkeeper.alerts.verdicts import Verdict, judge_series, points
from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

log = logging.getLogger("watchkeeper.alerts")
PRUNE_EVERY = 3600.0


class AlertEngine:
    """Runs :meth:`run_once` after every evaluator pass (``Evaluator.after_pass``)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        notifiers: Mapping[Any, Any] | None = None,
        *,
        public_url: str = "",
        on_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.catalog = store, catalog
        self.notifiers = dict(notifiers or {})
        self.public_url = public_url
        self.lifecycle = Lifecycle(store, self.notifiers, public_url)
        self.on_enqueue = on_enqueue
        self.passes = 0
        self.errors = 0
        self._references: dict[tuple[str, str, str, str], float | None] = {}
        self._pruned = 0.0

    # ------------------------------------------------------------------------ the pass
    def run_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        monitors = self.catalog.all()
        enqueued = False
        for monitor in monitors:
            try:
                enqueued |= self._monitor(monitor, now)
            except Exception:  # one broken monitor does not stop the others
                self.errors += 1
                log.exception("monitor %r failed", monitor.name)
        try:
            enqueued |= ready.sync(self.store, self.lifecycle, now)  # challengers to promote
        except Exception:
            self.errors += 1
            log.exception("the ready_to_promote alerts failed")
        try:
            enqueued |= self._close_orphans({m.name for m in monitors}, now)
            enqueued |= self._release_silenced(now)
            if now - self._pruned > PRUNE_EVERY:
                self._prune(now)
                self._pruned = now
        except Exception:
            self.errors += 1
            log.exception("alert housekeeping failed")
        self.passes += 1
        if enqueued and self.on_enqueue is not None:
            self.on_enqueue()

    def _monitor(self, m: Monitor, now: float) -> bool:
        try:
            info = self.store.model(m.model)
        except NotFoundError:
            return False
        version = m.version or info.champion
        if not version:
            return False
        segment = m.segment if m.segment is not None else ("*" if info.segments else "")
        changed, cursor = self._changed(m, version, segment)
        verdicts: list[Verdict] = []
        if changed:
            verdicts = self._judge(m, info.window_seconds, version, segment, sorted(changed))
            self._save(m, version, segment, verdicts, max(changed.values(), default=cursor), now)
        # targets with new verdicts; and pending alerts, which a cooldown may let fire now
        # (a firing alert changes only with new verdicts)
        targets = {v.target for v in verdicts if v.judged}
        a = t.alerts.c
        with self.store.engine.connect() as conn:
            targets |= set(
                conn.execute(
                    sa.select(a.target).where(
                        (a.monitor == m.name) & a.open_key.is_not(None) & (a.state == "pending")
                    )
                ).scalars()
            )
        enqueued = False
        for target in sorted(targets):
            enqueued |= self.lifecycle.step(m, info.window_seconds, version, segment, target, now)
        return enqueued

    def _changed(self, m: Monitor, version: str, segment: str) -> tuple[dict[int, float], float]:
        """Windows evaluated since the monitor's cursor: window start → evaluated_at."""
        c, ev = t.monitor_cursors.c, t.evaluations.c
        digest = m.judging_hash()
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(t.monitor_cursors).where(c.monitor == m.name)).first()
        if row is None or row.spec_hash != digest:  # new, or judged differently now: start over
            with self.store.write() as conn:
                forget(conn, m.name)
                conn.execute(
                    t.monitor_cursors.insert().values(
                        monitor=m.name, spec_hash=digest, evaluated_at=-1.0
                    )
                )
            since = -1.0
        else:
            since = float(row.evaluated_at)
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ev.window_start, ev.evaluated_at).where(
                    (ev.model == m.model)
                    & (ev.version == version)
                    & (ev.segment == segment)
                    & (ev.evaluated_at > since)
                )
            ).all()
        return {int(r.window_start): float(r.evaluated_at) for r in rows}, since

    def _judge(
        self, m: Monitor, window_seconds: int, version: str, segment: str, windows: list[int]
    ) -> list[Verdict]:
        if KINDS[m.kind].sequential:
            from watchkeeper.alerts.sequential import judge_detector

            return judge_detector(self.store, m, version, segment, windows, window_seconds)
        args = (self.store, m.model, version, segment)
        values = points(*args, m.metric, m.feature, window_seconds)
        samples = points(*args, m.sample_metric, "", window_seconds).get("", {})
        out: list[Verdict] = []
        for target, series in sorted(values.items()):
            reference = None
            if KINDS[m.kind].reference:
                reference = m.params.get("reference")
                if reference is None:
                    reference = self._reference(m.model, version, m.metric, target)
            mine = [w for w in windows if w in series]
            out += judge_series(m, target, series, samples, mine, reference=reference)
        return out

    def _reference(self, model: str, version: str, metric: str, feature: str) -> float | None:
        key = (model, version, metric, feature)
        if key not in self._references:  # versions never change once added
            self._references[key] = reference_value(self.store, model, version, metric, feature)
        return self._references[key]

    def _save(
        self,
        m: Monitor,
        version: str,
        segment: str,
        verdicts: Sequence[Verdict],
        cursor: float,
        now: float,
    ) -> None:
        mw = t.monitor_windows.c
        with self.store.write() as conn:
            for v in verdicts:
                key = {
                    "monitor": m.name,
                    "target": v.target,
                    "version": version,
                    "segment": segment,
                    "window_start": v.window_start,
                }
                values = {
                    "value": v.value,
                    "sample_size": v.sample_size,
                    "breach": v.breach,
                    "healthy": v.healthy,
                    "detail": v.detail,
                    "state": v.state,
                    "updated_at": now,
                }
                where = sa.and_(*(getattr(mw, k) == val for k, val in key.items()))
                if not conn.execute(
                    t.monitor_windows.update().where(where).values(**values)
                ).rowcount:
                    conn.execute(t.monitor_windows.insert().values(**key, **values))
            conn.execute(
                t.monitor_cursors.update()
                .where(t.monitor_cursors.c.monitor == m.name)
                .values(evaluated_at=cursor)
            )

    # ------------------------------------------------------------------------ lifecycle
    def _close_orphans(self, names: set[str], now: float) -> bool:
        """Open alerts of monitors that no longer exist are resolved."""
        a = t.alerts.c
        open_ = a.open_key.is_not(None) & (a.monitor != READY)  # a challenger's: alerts/ready.py
        with self.store.engine.connect() as conn:  # read first: a write locks SQLite
            monitors = set(conn.execute(sa.select(a.monitor).where(open_).distinct()).scalars())
        if not monitors - names:
            return False
        enqueued = False
        with self.store.write() as conn:
            rows = conn.execute(sa.select(t.alerts).where(open_)).mappings().all()
            for row in rows:
                if row["monitor"] not in names:
                    state = "resolved" if row["state"] == "firing" else "cancelled"
                    enqueued |= self.lifecycle.close(
                        conn, row, state, None, now, "the monitor was removed"
                    )
        return enqueued

    def _release_silenced(self, now: float) -> bool:
        """A firing alert whose notice was silenced is notified once no silence matches."""
        a = t.alerts.c
        held = (a.state == "firing") & a.notified.is_(None)
        with self.store.engine.connect() as conn:  # read first: a write locks SQLite
            if conn.execute(sa.select(a.id).where(held).limit(1)).first() is None:
                return False
        enqueued = False
        with self.store.write() as conn:
            rows = conn.execute(sa.select(t.alerts).where(held)).mappings().all()
            active = active_silences(self.store, conn, now)
            for row in rows:
                payload = alert_dict(row, self.public_url)
                if silenced_by(payload, active):
                    continue
                outbox.release(conn, payload, now=now)
                conn.execute(t.alerts.update().where(a.id == row["id"]).values(notified="firing"))
                enqueued = True
        return enqueued

    def _prune(self, now: float) -> None:
        """Verdicts older than the model's retention go (alerts stay)."""
        mw = t.monitor_windows.c
        with self.store.write() as conn:
            for monitor in self.catalog.all():
                try:
                    info = self.store.model(monitor.model)
                except NotFoundError:
                    continue
                cutoff = now - info.retention_days * 86400
                conn.execute(
                    t.monitor_windows.delete().where(
                        (mw.monitor == monitor.name) & (mw.window_start < cutoff)
                    )
                )
