"""Silences: mute the notifications of matching alerts until an expiry.

A silence holds matchers on the alert's ``monitor``, ``model``, ``version``, ``segment``,
``target`` and ``severity`` — each an exact value or a shell pattern (``churn-*``) — and
matches an alert when every matcher does. While a silence is active, matching alerts still
change state and are recorded; their notifications are recorded as ``silenced`` instead of
sent. When the last silence of a still-firing alert ends, its firing notification goes out.
Actions (retraining) are not muted. Expiring a silence early keeps it in the history.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.actions import parse_duration
from watchkeeper.errors import InputError
from watchkeeper.store import audit
from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

MATCHERS = ("monitor", "model", "version", "segment", "target", "severity")
MAX_SECONDS = 366 * 86400


def matches(matchers: Mapping[str, str], alert: Mapping[Any, Any]) -> bool:
    """Whether every matcher matches the alert's field (exact or shell pattern).

    >>> matches({"model": "churn-*", "severity": "critical"},
    ...         {"model": "churn-eu", "severity": "critical"})
    True
    """
    return all(fnmatchcase(str(alert.get(k, "")), str(v)) for k, v in matchers.items())


def check_matchers(matchers: object) -> dict[str, str]:
    if not isinstance(matchers, Mapping) or not matchers:
        raise InputError(f"silence matchers: give at least one of {', '.join(MATCHERS)}")
    unknown = sorted(set(map(str, matchers)) - set(MATCHERS))
    if unknown:
        raise InputError(f"silence matchers: unknown field(s) {unknown}; use {', '.join(MATCHERS)}")
    out = {}
    for key, value in matchers.items():
        if not isinstance(value, str) or not value:
            raise InputError(f"silence matcher {key}: expected a non-empty string, got {value!r}")
        out[str(key)] = value
    return out


def create_silence(
    store: Store,
    matchers: object,
    *,
    duration: object = None,
    expires_at: float | None = None,
    comment: str = "",
    created_by: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Store a silence active from now until ``expires_at`` or for ``duration`` (seconds or
    ``"2h"``); exactly one of the two."""
    now = time.time() if now is None else now
    checked = check_matchers(matchers)
    if (duration is None) == (expires_at is None):
        raise InputError("silence: give exactly one of duration and expires_at")
    if duration is not None:
        expires_at = now + parse_duration(duration, what="silence duration")
    assert expires_at is not None
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise InputError(f"silence expires_at: expected Unix seconds, got {expires_at!r}")
    if expires_at <= now:
        raise InputError("silence expires_at: must be in the future")
    if expires_at - now > MAX_SECONDS:
        raise InputError("silence duration: at most 366 days")
    if not isinstance(comment, str) or not isinstance(created_by, str):
        raise InputError("silence comment and created_by: expected strings")
    row = {
        "matchers": checked,
        "comment": comment[:1000],
        "created_by": created_by[:200],
        "created_at": now,
        "starts_at": now,
        "expires_at": float(expires_at),
    }
    with store.write() as conn:
        new_id = conn.execute(t.silences.insert().values(**row)).inserted_primary_key[0]  # type: ignore[index]
        model = checked.get("model")
        audit.record(conn, "silence_created", f"silence:{new_id}", model=model, after=row)
    return _out({"id": int(new_id), **row}, now)


def _out(row: Mapping[Any, Any], now: float) -> dict[str, Any]:
    active = row["starts_at"] <= now < row["expires_at"]
    return {**dict(row), "active": active}


def silences(
    store: Store,
    *,
    active: bool | None = None,
    limit: int = 100,
    offset: int = 0,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Silences, newest first; ``active``: only those in force now (True) or not (False)."""
    now = time.time() if now is None else now
    s = t.silences.c
    q = sa.select(t.silences)
    if active is True:
        q = q.where((s.starts_at <= now) & (s.expires_at > now))
    elif active is False:
        q = q.where((s.starts_at > now) | (s.expires_at <= now))
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(s.id.desc()).limit(limit).offset(offset)).mappings()
        return [_out(r, now) for r in rows]


def active_silences(
    store: Store, conn: sa.Connection | None = None, now: float | None = None
) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    s = t.silences.c
    q = sa.select(t.silences).where((s.starts_at <= now) & (s.expires_at > now))
    if conn is not None:
        return [dict(r) for r in conn.execute(q).mappings()]
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def expire_silence(store: Store, silence_id: int, *, now: float | None = None) -> dict[str, Any]:
    """End a silence now (an expired one stays as it is); it stays in the history."""
    now = time.time() if now is None else now
    s = t.silences.c
    with store.write() as conn:
        row = conn.execute(sa.select(t.silences).where(s.id == silence_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"silence {silence_id} does not exist")
        if row["expires_at"] > now:
            conn.execute(t.silences.update().where(s.id == silence_id).values(expires_at=now))
            audit.record(
                conn, "silence_expired", f"silence:{silence_id}",
                model=(row["matchers"] or {}).get("model"),
                before={"expires_at": row["expires_at"]}, after={"expires_at": now},
            )  # fmt: skip
        out = dict(row)
        out["expires_at"] = min(row["expires_at"], now)
    return _out(out, now)


def silenced_by(alert: Mapping[Any, Any], active: list[dict[str, Any]]) -> list[int]:
    """Ids of the active silences that match ``alert``."""
    return [int(s["id"]) for s in active if matches(s["matchers"], alert)]
