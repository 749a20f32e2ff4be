"""The monitors in force: those of the settings file (read-only) and those created through the
API (stored in ``wk_monitors``). Names are unique across both."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.monitors import Monitor, parse_monitor
from watchkeeper.store import audit
from watchkeeper.store import tables as t
from watchkeeper.store.state import ConflictError, NotFoundError, Store

log = logging.getLogger("watchkeeper.alerts")


class Catalog:
    """Config monitors plus stored ones; ``notifiers``: the configured notifier names."""

    def __init__(
        self, store: Store, config: Sequence[Monitor] = (), notifiers: Iterable[str] = ()
    ) -> None:
        self.store = store
        self.config = {m.name: m for m in config}
        self.notifiers = sorted(notifiers)

    def stored(self) -> dict[str, Monitor]:
        out = {}
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.monitors).order_by(t.monitors.c.name)).mappings()
            for row in rows:
                try:
                    out[row["name"]] = parse_monitor(row["spec"], source="api")
                except Exception:  # a spec an older release accepted: skip it, say so
                    log.exception(
                        "stored monitor %r cannot be read; it is not evaluated", row["name"]
                    )
        return out

    def all(self) -> list[Monitor]:
        stored = self.stored()
        return [*self.config.values(), *(m for n, m in stored.items() if n not in self.config)]

    def get(self, name: str) -> Monitor:
        if name in self.config:
            return self.config[name]
        stored = self.stored()
        if name not in stored:
            raise NotFoundError(f"monitor {name!r} does not exist")
        return stored[name]

    def put(self, raw: Mapping[str, Any], *, create: bool) -> Monitor:
        """Store an API monitor; ``create``: refuse an existing name (409), else replace."""
        monitor = parse_monitor(raw, notifiers=self.notifiers, source="api", allow_commands=False)
        if monitor.name in self.config:
            raise ConflictError(
                f"monitor {monitor.name!r} is declared in the settings file; change it there"
            )
        now = time.time()
        m = t.monitors.c
        with self.store.write() as conn:
            exists = conn.execute(sa.select(m.spec).where(m.name == monitor.name)).first()
            if exists and create:
                raise ConflictError(f"monitor {monitor.name!r} exists already")
            if exists:
                conn.execute(
                    t.monitors.update()
                    .where(m.name == monitor.name)
                    .values(spec=monitor.to_dict(), updated_at=now)
                )
                audit.record(
                    conn, "monitor_replaced", f"monitor:{monitor.name}", model=monitor.model,
                    before=exists.spec, after=monitor.to_dict(),
                )  # fmt: skip
            else:
                conn.execute(
                    t.monitors.insert().values(
                        name=monitor.name, spec=monitor.to_dict(), created_at=now, updated_at=now
                    )
                )
                audit.record(
                    conn, "monitor_created", f"monitor:{monitor.name}", model=monitor.model,
                    after=monitor.to_dict(),
                )  # fmt: skip
        return monitor

    def delete(self, name: str) -> None:
        """Delete an API monitor and its verdicts; the engine resolves its open alerts."""
        if name in self.config:
            raise ConflictError(
                f"monitor {name!r} is declared in the settings file; remove it there"
            )
        m = t.monitors.c
        with self.store.write() as conn:
            spec = conn.execute(sa.select(m.spec).where(m.name == name)).scalar()
            if spec is None:
                raise NotFoundError(f"monitor {name!r} does not exist")
            conn.execute(t.monitors.delete().where(m.name == name))
            forget(conn, name)
            model = spec.get("model") if isinstance(spec, dict) else None
            audit.record(conn, "monitor_deleted", f"monitor:{name}", model=model, before=spec)


def forget(conn: sa.Connection, name: str) -> None:
    """Drop a monitor's verdicts and cursor (its alerts stay in the history)."""
    conn.execute(t.monitor_windows.delete().where(t.monitor_windows.c.monitor == name))
    conn.execute(t.monitor_cursors.delete().where(t.monitor_cursors.c.monitor == name))


def describe(store: Store, monitor: Monitor) -> dict[str, Any]:
    """A monitor's spec, source, and per target its latest verdict and open alert."""
    mw, a = t.monitor_windows.c, t.alerts.c
    newest = (
        sa.select(mw.target, sa.func.max(mw.window_start).label("last"))
        .where(mw.monitor == monitor.name)
        .group_by(mw.target)
        .subquery()
    )
    q = sa.select(t.monitor_windows).join(
        newest, (mw.target == newest.c.target) & (mw.window_start == newest.c.last)
    )
    targets: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(q.where(mw.monitor == monitor.name)).mappings():
            targets[row["target"]] = {
                "target": row["target"],
                "version": row["version"],
                "window_start": row["window_start"],
                "value": row["value"],
                "sample_size": row["sample_size"],
                "breach": row["breach"],
                "detail": row["detail"],
                "alert": None,
            }
        for alert_id, target, state in conn.execute(
            sa.select(a.id, a.target, a.state).where(
                (a.monitor == monitor.name) & a.open_key.is_not(None)
            )
        ):
            entry = targets.setdefault(target, {"target": target})
            entry["alert"] = {"id": alert_id, "state": state}
    return {
        "name": monitor.name,
        "source": monitor.source,
        "kind": monitor.kind,
        "spec": monitor.to_dict(),
        "targets": [targets[k] for k in sorted(targets)],
    }
