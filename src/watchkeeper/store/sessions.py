"""Dashboard sessions, kept server-side in ``wk_sessions``.

Signing in with a token opens a session: a random id (32 bytes) goes into the browser's
cookie, and only its SHA-256 into the row, with the token's id, a CSRF token for the
session's forms and the time it ends. The cookie is therefore never the API token, and a
copy of the table opens no session. A session ends when it expires, when it is signed out
(its row is deleted, so a replayed cookie finds nothing) and when its token is revoked
(:func:`watchkeeper.store.tokens.revoke_token` deletes the token's sessions; reads join the
token as well, so its scopes are always the token's current ones).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.state import Store


@dataclass(frozen=True)
class Session:
    """An open session: the token it stands for (its id and scopes) and its forms' token."""

    token_id: str
    scopes: tuple[str, ...]
    csrf: str
    expires_at: float
    token_name: str = ""  # what the audit trail records as the actor


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(
    store: Store, token_id: str, scopes: list[str], hours: float
) -> tuple[str, Session]:
    """A new session for a token the caller has checked (``check_token``): ``(session id,
    session)``; the id goes into the cookie. Expired sessions are deleted on the way."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    with store.write() as conn:
        conn.execute(t.sessions.delete().where(t.sessions.c.expires_at <= now))
        conn.execute(
            t.sessions.insert().values(
                id_hash=_hash(session_id),
                token_id=token_id,
                csrf=csrf,
                created_at=now,
                expires_at=now + hours * 3600,
            )
        )
    return session_id, Session(token_id, tuple(sorted(scopes)), csrf, now + hours * 3600)


def read_session(store: Store, session_id: str) -> Session | None:
    """The open session of a cookie's id; None when it ended, expired or its token is gone."""
    if not session_id:
        return None
    s, tok = t.sessions, t.tokens
    query = (
        sa.select(s.c.token_id, s.c.csrf, s.c.expires_at, tok.c.scopes, tok.c.name)
        .join(tok, tok.c.id == s.c.token_id)
        .where(s.c.id_hash == _hash(session_id), s.c.expires_at > time.time())
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    scopes = tuple(sorted(row["scopes"]))
    return Session(row["token_id"], scopes, row["csrf"], row["expires_at"], row["name"])


def end_session(store: Store, session_id: str) -> bool:
    """Delete a session (sign out); whether there was one."""
    with store.write() as conn:
        result = conn.execute(t.sessions.delete().where(t.sessions.c.id_hash == _hash(session_id)))
    return bool(result.rowcount)
