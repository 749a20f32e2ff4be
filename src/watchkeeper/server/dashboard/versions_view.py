"""What the versions page shows, and the promotion actions it offers an admin.

Each version with its state (champion, challenger in shadow or canary, retired, registered);
each shadow challenger beside the champion on the requests both answered
(:func:`watchkeeper.promotion.comparison.compare`) with its latest verdict; each retired
version with its final verdict; the model's promotion policy. The actions call the functions
the API and the CLI call (``store/promotion.py``), so the model's history records them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.promotion.comparison import compare
from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import policy_of
from watchkeeper.server.dashboard import views
from watchkeeper.store import promotion as states
from watchkeeper.store.state import ModelInfo, Store

VERDICTS_READ = 1000  # the newest verdicts searched for each version's latest
ACTIONS = ("promote", "retire", "rollback")


def _latest_verdicts(store: Store, model: str) -> dict[str, dict[str, Any]]:
    """Each challenger's newest verdict."""
    latest: dict[str, dict[str, Any]] = {}
    for v in states.verdicts(store, model, limit=VERDICTS_READ):  # newest first
        latest.setdefault(v["challenger"], v)
    return latest


def can_roll_back(store: Store, model: str, champion: str | None) -> str | None:
    """The version a rollback would restore: the ``previous`` of the promotion that made the
    champion (what :func:`states.rollback` reads), or None."""
    if champion is None:
        return None
    for change in reversed(states.changes(store, model)):
        if change["action"] == "promoted" and change["version"] == champion:
            return change["previous"]  # type: ignore[no-any-return]
    return None


def versions_page(
    store: Store, info: ModelInfo, configured: Mapping[str, Policy] | None
) -> dict[str, Any]:
    """The page's rows, challengers, retired versions, policy and rollback target."""
    model = info.name
    state_of = {s["version"]: s for s in states.states(store, model)}
    rows = [{**r, **state_of.get(r["version"], {})} for r in views.version_rows(store, info)]
    policy, source = policy_of(store, model, configured)
    shown = policy or Policy()
    latest = _latest_verdicts(store, model)
    challengers, retired = [], []
    for row in rows:
        version = row["version"]
        if row.get("state") == "challenger":
            item = {**row, "verdict": latest.get(version), "comparison": None}
            if row["mode"] == "shadow" and info.champion is not None:
                task = views.task(store, model, info.champion)
                item["comparison"] = compare(store, model, info.champion, version, shown, task)
            challengers.append(item)
        elif row.get("state") == "retired":
            retired.append({**row, "verdict": latest.get(version)})
    return {
        "versions": rows,
        "challengers": challengers,
        "retired": retired,
        "policy": shown.to_dict(),
        "policy_source": source,
        "rollback_to": can_roll_back(store, model, info.champion),
    }


def act(
    store: Store, model: str, action: str, version: str, detail: Mapping[str, Any]
) -> dict[str, Any]:
    """Promote or retire ``version``, or roll the champion back (``version`` unused)."""
    if action == "promote":
        return states.promote(store, model, version, detail=detail)
    if action == "retire":
        return states.retire(store, model, version, detail=detail)
    if action == "rollback":
        return states.rollback(store, model, detail=detail)
    raise InputError(f"action {action!r}: use one of {', '.join(ACTIONS)}")


def flash(store: Store, model: str, done: str | None) -> str | None:
    """The notice after an action, told from the model's last recorded change (not from the
    link, which anyone can write)."""
    if done not in ("promoted", "rolled_back", "retired"):
        return None
    changes = states.changes(store, model)
    last = changes[-1] if changes else None
    if last is None or last["action"] != done:
        return None
    version, previous = last["version"], last["previous"]
    if done == "promoted":
        replaced = f"; {previous} is retired and can be rolled back to" if previous else ""
        return f"Version {version} is now the champion{replaced}."
    if done == "rolled_back":
        return f"Rolled back: version {version} is the champion again; {previous} is retired."
    return f"Version {version} is retired."
