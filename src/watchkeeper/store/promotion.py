"""Champion, challengers and retired versions, and what promotion decides on.

The champion is ``wk_models.champion`` (it answers the model's requests); any other version
is a challenger — ``shadow`` (scores a copy of each request off the response path) or
``canary`` (answers a share of the requests, sticky by an entity key when one is named) — or
retired, or merely registered. Each change is one write transaction that also appends a row
to ``wk_promotions``, so a promotion swaps the champion atomically, records the champion it
replaced (what :func:`rollback` restores) and is a step of the model's history.

>>> STATES
('champion', 'challenger', 'retired', 'registered')
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.store import audit
from watchkeeper.store import tables as t
from watchkeeper.store.state import ConflictError, NotFoundError

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

STATES = ("champion", "challenger", "retired", "registered")
MODES = ("shadow", "canary")


def states(store: Store, model: str) -> list[dict[str, Any]]:
    """Every version of the model with its state, oldest version first."""
    info = store.model(model)
    s = t.version_states.c
    with store.engine.connect() as conn:
        rows = {
            r.version: r for r in conn.execute(sa.select(t.version_states).where(s.model == model))
        }
    out = []
    for v in store.versions(model):
        r = rows.get(v["version"])
        if v["version"] == info.champion:
            state = "champion"
        elif r is not None:
            state = r.state
        else:
            state = "registered"
        c = r if state == "challenger" else None
        out.append(
            {
                "version": v["version"],
                "state": state,
                "mode": c.mode if c is not None else None,
                "share": c.share if c is not None and c.mode == "canary" else None,
                "entity_key": c.entity_key if c is not None else None,
                "since": float(r.changed_at) if r is not None and state != "champion" else None,
            }
        )
    return out


def challengers(store: Store, model: str) -> list[dict[str, Any]]:
    """The model's challengers: version, mode, share, entity_key."""
    return [s for s in states(store, model) if s["state"] == "challenger"]


def challenge(
    store: Store,
    model: str,
    version: str,
    *,
    mode: str,
    share: float | None = None,
    entity_key: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``version`` a challenger: in ``shadow``, or a ``canary`` answering ``share`` (0–1)
    of the requests; the canaries' shares together are at most 1."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "canary":
        if share is None or not 0 < share < 1:
            raise InputError(f"share {share!r}: a canary answers a share between 0 and 1")
    elif share is not None:
        raise InputError("share: only a canary answers a share of the requests")
    store.version(model, version)  # NotFoundError naming the model or version
    s = t.version_states.c

    def body(conn: sa.Connection) -> None:
        if _champion(conn, model) == version:
            raise ConflictError(f"version {version!r} is the champion of {model!r}")
        others = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(s.share), 0.0)).where(
                (s.model == model) & (s.version != version) & (s.state == "challenger")
                & (s.mode == "canary")
            )
        ).scalar_one()  # fmt: skip
        if share is not None and float(others) + share > 1:
            raise InputError(
                f"share {share:g}: the other canaries of {model!r} answer {float(others):g} "
                "of the requests already; together at most 1"
            )
        now = time.time()
        before = _state_of(conn, model, version)
        _set_state(conn, model, version, "challenger", now, mode, share, entity_key)
        info = {"mode": mode, "share": share, "entity_key": entity_key, **(detail or {})}
        _log(conn, model, now, f"{mode}_started", version, None, info)
        after = {"state": "challenger", "mode": mode, "share": share, "entity_key": entity_key}
        audit.record(
            conn, f"{mode}_started", f"{model}/{version}", model=model, before=before,
            after=after,
        )  # fmt: skip

    store.write(body)
    store.changed()
    return next(x for x in states(store, model) if x["version"] == version)


def promote(
    store: Store, model: str, version: str, *, detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Make ``version`` the champion in one transaction; the champion it replaces is retired
    and recorded, for :func:`rollback`. Returns {model, champion, previous}."""
    store.version(model, version)
    s = t.version_states.c

    def body(conn: sa.Connection) -> str | None:
        previous = _champion(conn, model, lock=True)
        if previous == version:
            raise ConflictError(f"version {version!r} is the champion of {model!r} already")
        state = conn.execute(
            sa.select(s.state).where((s.model == model) & (s.version == version))
        ).scalar()
        if state == "retired" and not (detail or {}).get("force"):
            raise ConflictError(
                f"version {version!r} of {model!r} is retired: make it a challenger first"
            )
        now = time.time()
        _swap(conn, model, version, previous, now)
        _log(conn, model, now, "promoted", version, previous, dict(detail or {}))
        audit.record(
            conn, "promoted", f"{model}/{version}", model=model,
            before={"champion": previous, "state": state or "registered"},
            after={"champion": version},
        )  # fmt: skip
        return previous

    previous = store.write(body)
    store.changed()
    return {"model": model, "champion": version, "previous": previous}


def rollback(
    store: Store, model: str, *, detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Restore the champion the current one replaced (the ``previous`` of the promotion that
    made it champion); the current one is retired. Returns {model, champion, previous}."""
    store.model(model)
    p = t.promotions.c

    def body(conn: sa.Connection) -> tuple[str, str]:
        current = _champion(conn, model, lock=True)
        made = conn.execute(
            sa.select(p.previous)
            .where((p.model == model) & (p.action == "promoted") & (p.version == current))
            .order_by(p.id.desc())
            .limit(1)
        ).first()
        if current is None or made is None or made.previous is None:
            raise ConflictError(
                f"model {model!r}: no promotion made {current!r} champion; nothing to roll back to"
            )
        now = time.time()
        _swap(conn, model, made.previous, current, now)
        _log(conn, model, now, "rolled_back", made.previous, current, dict(detail or {}))
        audit.record(
            conn, "rolled_back", f"{model}/{made.previous}", model=model,
            before={"champion": current}, after={"champion": made.previous},
        )  # fmt: skip
        return made.previous, current

    champion, previous = store.write(body)
    store.changed()
    return {"model": model, "champion": champion, "previous": previous}


def retire(
    store: Store, model: str, version: str, *, detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Retire a version that is not the champion: it answers and shadows nothing."""
    store.version(model, version)

    def body(conn: sa.Connection) -> None:
        if _champion(conn, model) == version:
            raise ConflictError(
                f"version {version!r} is the champion of {model!r}: promote another first"
            )
        now = time.time()
        before = _state_of(conn, model, version)
        _set_state(conn, model, version, "retired", now)
        _log(conn, model, now, "retired", version, None, dict(detail or {}))
        audit.record(
            conn, "retired", f"{model}/{version}", model=model, before=before,
            after={"state": "retired"},
        )  # fmt: skip

    store.write(body)
    store.changed()
    return next(x for x in states(store, model) if x["version"] == version)


def changes(store: Store, model: str) -> list[dict[str, Any]]:
    """The model's state changes (``wk_promotions``), oldest first."""
    p = t.promotions.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.promotions).where(p.model == model).order_by(p.id)
        ).mappings()
        return [dict(r) for r in rows]


# ------------------------------------------------------------------ shadow predictions
def add_shadow(store: Store, model: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store what a challenger answered (model, version, prediction_id, prediction, score,
    latency_ms, champion_latency_ms, error); a prediction id stored already is skipped."""
    if not rows:
        return 0
    c = t.shadow_predictions.c
    version = rows[0]["version"]

    def body(conn: sa.Connection) -> int:
        ids = [str(r["prediction_id"]) for r in rows]
        seen = set(
            conn.execute(
                sa.select(c.prediction_id).where(
                    (c.model == model) & (c.version == version) & c.prediction_id.in_(ids)
                )
            ).scalars()
        )
        fresh = [{**r, "model": model} for r in rows if str(r["prediction_id"]) not in seen]
        if fresh:
            conn.execute(t.shadow_predictions.insert(), fresh)
        return len(fresh)

    return store.write(body)


def shadow_pairs(store: Store, model: str, champion: str, challenger: str) -> list[dict[str, Any]]:
    """The requests both versions answered, with the label when it has arrived: label,
    champion's prediction and score, challenger's prediction, score, latency, error."""
    s, p, a = t.shadow_predictions.c, t.predictions.c, t.actuals.c
    query = (
        sa.select(
            s.prediction_id, a.label, p.prediction.label("champion_prediction"),
            p.score.label("champion_score"), s.prediction.label("challenger_prediction"),
            s.score.label("challenger_score"), s.latency_ms, s.champion_latency_ms, s.error,
        )
        .select_from(
            t.shadow_predictions.join(
                t.predictions, (p.model == s.model) & (p.prediction_id == s.prediction_id)
            ).outerjoin(
                t.actuals, (a.model == s.model) & (a.prediction_id == s.prediction_id)
            )
        )
        .where((s.model == model) & (s.version == challenger) & (p.version == champion))
        .order_by(s.prediction_id)
    )  # fmt: skip
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# ------------------------------------------------------------------ policies and verdicts
def put_policy(store: Store, model: str, policy: Mapping[str, Any]) -> None:
    store.model(model)
    c = t.promotion_policies.c

    def body(conn: sa.Connection) -> None:
        before = conn.execute(sa.select(c.policy).where(c.model == model)).scalar()
        conn.execute(t.promotion_policies.delete().where(c.model == model))
        conn.execute(
            t.promotion_policies.insert().values(
                model=model, policy=dict(policy), updated_at=time.time()
            )
        )
        audit.record(
            conn, "policy_set", f"{model}/promotion-policy", model=model, before=before,
            after=dict(policy),
        )  # fmt: skip

    store.write(body)


def get_policy(store: Store, model: str) -> dict[str, Any] | None:
    c = t.promotion_policies.c
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(c.policy).where(c.model == model)).scalar()
    return dict(value) if value is not None else None


def add_verdict(
    store: Store,
    model: str,
    champion: str,
    challenger: str,
    decision: str,
    evidence: Mapping[str, Any],
) -> int:
    def body(conn: sa.Connection) -> int:
        result = conn.execute(
            t.verdicts.insert().values(
                model=model,
                champion=champion,
                challenger=challenger,
                at=time.time(),
                decision=decision,
                evidence=dict(evidence),
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    return store.write(body)


def verdicts(store: Store, model: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The model's verdicts, newest first."""
    v = t.verdicts.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.verdicts).where(v.model == model).order_by(v.id.desc()).limit(limit)
        ).mappings()
        return [dict(r) for r in rows]


# ------------------------------------------------------------------ steps
def _champion(conn: sa.Connection, model: str, *, lock: bool = False) -> str | None:
    query = sa.select(t.models.c.champion).where(t.models.c.name == model)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"model {model!r} is not registered")
    return row.champion  # type: ignore[no-any-return]


def _state_of(conn: sa.Connection, model: str, version: str) -> dict[str, Any]:
    """The version's state as the audit trail records it: ``registered`` without a row."""
    s = t.version_states.c
    row = conn.execute(
        sa.select(s.state, s.mode, s.share, s.entity_key).where(
            (s.model == model) & (s.version == version)
        )
    ).first()
    if row is None:
        return {"state": "registered"}
    return {"state": row.state, "mode": row.mode, "share": row.share, "entity_key": row.entity_key}


def _swap(conn: sa.Connection, model: str, champion: str, previous: str | None, now: float) -> None:
    s = t.version_states.c
    conn.execute(t.models.update().where(t.models.c.name == model).values(champion=champion))
    conn.execute(t.version_states.delete().where((s.model == model) & (s.version == champion)))
    if previous is not None:
        _set_state(conn, model, previous, "retired", now)


def _set_state(
    conn: sa.Connection,
    model: str,
    version: str,
    state: str,
    now: float,
    mode: str | None = None,
    share: float | None = None,
    entity_key: str | None = None,
) -> None:
    s = t.version_states.c
    conn.execute(t.version_states.delete().where((s.model == model) & (s.version == version)))
    conn.execute(
        t.version_states.insert().values(
            model=model, version=version, state=state, mode=mode, share=share,
            entity_key=entity_key, changed_at=now,
        )
    )  # fmt: skip


def _log(
    conn: sa.Connection,
    model: str,
    now: float,
    action: str,
    version: str,
    previous: str | None,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        t.promotions.insert().values(
            model=model, at=now, action=action, version=version, previous=previous,
            detail=detail,
        )
    )  # fmt: skip
