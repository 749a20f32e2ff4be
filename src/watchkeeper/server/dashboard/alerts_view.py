"""The alerts page: firing and pending alerts, silences, and the history; an admin can
silence an alert or end a silence from the page.

It reads and writes through the alert engine's own functions (``watchkeeper.alerts``); when
that package is not there, every function here says so (``available()`` is False) and the
pages show that alerts are not available instead of failing.
"""

from __future__ import annotations

import glob
import importlib.util
import time
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.store.state import Store

DURATIONS = {"1h": "1 hour", "4h": "4 hours", "24h": "1 day", "7d": "7 days"}
HISTORY = 100


def available() -> bool:
    """Whether the alert engine is installed in this build."""
    try:
        return (
            importlib.util.find_spec("watchkeeper.alerts.queries") is not None
            and importlib.util.find_spec("watchkeeper.alerts.silences") is not None
        )
    except ModuleNotFoundError:  # pragma: no cover - no watchkeeper.alerts package at all
        return False


def firing_by_model(store: Store) -> dict[str, int] | None:
    """Model → firing alerts; None when alerts are not available."""
    if not available():
        return None
    from watchkeeper.alerts.queries import firing_counts

    out: dict[str, int] = {}
    for (model, _severity), n in firing_counts(store).items():
        out[model] = out.get(model, 0) + n
    return out


def _silenced_by(alert: dict[str, Any], active: list[dict[str, Any]]) -> list[int]:
    from watchkeeper.alerts.silences import matches

    return [int(s["id"]) for s in active if matches(s["matchers"], alert)]


def alerts_page(store: Store, model: str | None) -> dict[str, Any]:
    """Open alerts (with the silences that mute them), active silences, and the history."""
    from watchkeeper.alerts.queries import list_alerts
    from watchkeeper.alerts.silences import silences

    now = time.time()
    active = silences(store, active=True, now=now)
    open_ = list_alerts(store, model=model, state="open", limit=500)
    for alert in open_:
        alert["silenced_by"] = _silenced_by(alert, active)
    history = [
        a
        for a in list_alerts(store, model=model, limit=HISTORY)
        if a["state"] not in ("pending", "firing")
    ]
    if model is not None:
        active = [s for s in active if s["matchers"].get("model", model) == model]
    return {"open": open_, "silences": active, "history": history, "now": now}


def silence_alert(
    store: Store, alert_id: str, duration: str, comment: str, created_by: str
) -> dict[str, Any]:
    """Silence the notifications of exactly this alert's monitor, model, version, segment and
    target for ``duration`` (one of :data:`DURATIONS`); the alert itself keeps its state."""
    from watchkeeper.alerts.queries import get_alert
    from watchkeeper.alerts.silences import create_silence

    if not alert_id.isdigit():
        raise InputError(f"form field alert: {alert_id!r} is not an alert id")
    if duration not in DURATIONS:
        raise InputError(f"form field duration: {duration!r}; use one of {', '.join(DURATIONS)}")
    alert = get_alert(store, int(alert_id))
    fields = ("monitor", "model", "version", "segment", "target")
    # glob.escape: a value with * ? or [ matches itself only, not as a shell pattern
    matchers = {k: glob.escape(str(alert[k])) for k in fields if alert.get(k)}
    return create_silence(
        store, matchers, duration=duration, comment=comment[:1000], created_by=created_by
    )


def end_silence(store: Store, silence_id: int) -> dict[str, Any]:
    from watchkeeper.alerts.silences import expire_silence

    return expire_silence(store, silence_id)
