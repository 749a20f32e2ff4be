"""The audit trail (``wk_audit``): who changed what, when, from what to what.

Every change of the service's configuration and its models' lives — a model or version
registered, an artifact attached or replaced, a monitor or promotion policy set or deleted, a
silence created or expired, a challenger started, a promotion, rollback or retirement, a token
created or revoked, a dead letter replayed or deleted — writes one row with :func:`record`,
in the same transaction as the change: a change that fails leaves no row, and a change made
always has one.

The row's ``actor`` is whoever is acting in this context (:data:`ACTOR`): the API's token
middleware sets the token's name, the dashboard the signed-in token's name, a server without
tokens ``"local"``, the CLI ``"cli:<user>"`` for what it writes to the database itself; what
the service does on its own (a policy's promotion, a retraining's challenger) is
``"system"``.

The table is append-only: this module offers no update or delete, and the database refuses
both (triggers, revision 0012). Retention does not touch it.

>>> KINDS[:3]
('model_registered', 'version_registered', 'artifact_attached')
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.store import tables as t

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

SYSTEM, LOCAL = "system", "local"
KINDS: tuple[str, ...] = (
    "model_registered",
    "version_registered",
    "artifact_attached",
    "artifact_replaced",
    "monitor_created",
    "monitor_replaced",
    "monitor_deleted",
    "policy_set",
    "silence_created",
    "silence_expired",
    "shadow_started",
    "canary_started",
    "promoted",
    "rolled_back",
    "retired",
    "token_created",
    "token_revoked",
    "dead_letter_replayed",
    "dead_letter_deleted",
)
FIELDS = ("id", "at", "actor", "kind", "model", "target", "before", "after")

ACTOR: ContextVar[str | None] = ContextVar("watchkeeper_actor", default=None)


def current_actor() -> str:
    """Who is acting here: what :func:`acting_as` set, else ``"system"``."""
    return ACTOR.get() or SYSTEM


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record the changes made inside the block as ``actor``'s."""
    token = ACTOR.set(actor[:200])
    try:
        yield
    finally:
        ACTOR.reset(token)


def cli_actor() -> str:
    """The actor of a change the CLI writes to the database itself: ``cli:<user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return f"cli:{user}"


def _jsonable(value: Any) -> Any:
    return None if value is None else json.loads(json.dumps(value, default=str))


def record(
    conn: sa.Connection,
    kind: str,
    target: str,
    *,
    model: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Append one row, inside the caller's write transaction ``conn``."""
    assert kind in KINDS, kind
    conn.execute(
        t.audit.insert().values(
            at=time.time(),
            actor=current_actor(),
            kind=kind,
            model=model,
            target=target[:400],
            before=_jsonable(before),
            after=_jsonable(after),
        )
    )


def _where(
    model: str | None,
    kinds: Iterable[str] | None,
    since: float | None,
    until: float | None,
    actor: str | None,
) -> Any:
    a = t.audit.c
    clause: Any = sa.true()
    if model is not None:
        clause &= a.model == model
    if kinds:
        wanted = list(kinds)
        unknown = sorted(set(wanted) - set(KINDS))
        if unknown:
            raise InputError(f"kind {unknown[0]!r}: use one of {', '.join(KINDS)}")
        clause &= a.kind.in_(wanted)
    if since is not None:
        clause &= a.at >= since
    if until is not None:
        clause &= a.at < until
    if actor is not None:
        clause &= a.actor == actor
    return clause


def entries(
    store: Store,
    *,
    model: str | None = None,
    kinds: Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    actor: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The rows matching every filter given (``since <= at < until``), newest first."""
    a = t.audit.c
    query = (
        sa.select(t.audit)
        .where(_where(model, kinds, since, until, actor))
        .order_by(a.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with store.engine.connect() as conn:
        return [_out(r) for r in conn.execute(query).mappings()]


def export(
    store: Store,
    *,
    model: str | None = None,
    kinds: Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    actor: str | None = None,
    page: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Every row matching the filters, oldest first, read ``page`` rows at a time."""
    a = t.audit.c
    clause = _where(model, kinds, since, until, actor)
    last = 0
    while True:
        query = sa.select(t.audit).where(clause & (a.id > last)).order_by(a.id).limit(page)
        with store.engine.connect() as conn:
            rows = [_out(r) for r in conn.execute(query).mappings()]
        yield from rows
        if len(rows) < page:
            return
        last = rows[-1]["id"]


def _out(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in FIELDS}
