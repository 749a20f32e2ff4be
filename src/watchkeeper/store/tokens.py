"""API tokens with scopes, stored hashed.

A token reads ``wk_<id>_<secret>``: the id finds the row, the secret is checked against its
SHA-256 (tokens are 32 random bytes, so a fast hash is the right one) in constant time. The
token itself is shown once, when created, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.store import audit
from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

SCOPES = ("ingest", "read", "admin")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(store: Store, name: str, scopes: list[str]) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InputError(
            f"token scopes {unknown or scopes}: use one or more of {', '.join(SCOPES)}"
        )
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    with store.write() as conn:
        conn.execute(
            t.tokens.insert().values(
                id=token_id,
                name=name,
                hash=_hash(secret),
                scopes=sorted(set(scopes)),
                created_at=time.time(),
            )
        )
        shown = {"id": token_id, "name": name, "scopes": sorted(set(scopes))}
        audit.record(conn, "token_created", f"token:{token_id}", after=shown)
    return f"wk_{token_id}_{secret}"


def check_token(store: Store, token: str) -> list[str] | None:
    """The token's scopes, or None when it is not a valid token."""
    found = identify_token(store, token)
    return None if found is None else found[1]


def identify_token(store: Store, token: str) -> tuple[str, list[str]] | None:
    """The token's name (what the audit trail records as the actor) and scopes, or None when
    it is not a valid token."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "wk":
        return None
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t.tokens).where(t.tokens.c.id == parts[1])).mappings().first()
    if row is None or not hmac.compare_digest(row["hash"], _hash(parts[2])):
        return None
    return str(row["name"]), list(row["scopes"])


def list_tokens(store: Store) -> list[dict[str, Any]]:
    cols = [t.tokens.c.id, t.tokens.c.name, t.tokens.c.scopes, t.tokens.c.created_at]
    with store.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(sa.select(*cols).order_by(t.tokens.c.created_at)).mappings()
        ]


def revoke_token(store: Store, token_id: str) -> None:
    """Delete the token and the dashboard sessions opened with it (store/sessions.py)."""
    c = t.tokens.c
    with store.write() as conn:
        row = conn.execute(sa.select(c.id, c.name, c.scopes).where(c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no token with id {token_id!r}")
        conn.execute(t.tokens.delete().where(c.id == token_id))
        conn.execute(t.sessions.delete().where(t.sessions.c.token_id == token_id))
        shown = {"id": row.id, "name": row.name, "scopes": list(row.scopes)}
        audit.record(conn, "token_revoked", f"token:{token_id}", before=shown)


def count_tokens(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.tokens)).scalar() or 0)
