"""Which failures are the surroundings' and not the request's: the one classification of
database and disk faults, used by the API (answered 503 with ``Retry-After``), the processor
(retried later, never held against a batch) and the dead letters.

A fault is *transient* when the same request or batch would succeed once the database or the
disk is back, whatever it contains:

* the database cannot be reached, or the connection to it was lost or terminated
  (SQLAlchemy marks the connection invalidated; PostgreSQL SQLSTATE class ``08``, an
  administrator or crash shutdown ``57P01``-``57P03``, idle-session timeout ``57P05``,
  a lock not available ``55P03``), the connection pool is exhausted;
* the database or its disk is full or failing (PostgreSQL class ``53``: ``53100`` disk full,
  "could not extend file"; ``58030`` I/O error; SQLite ``SQLITE_FULL`` "database or disk is
  full", ``SQLITE_IOERR`` "disk I/O error", ``SQLITE_CANTOPEN``);
* SQLite is locked by another connection past its busy timeout (``SQLITE_BUSY``,
  ``SQLITE_LOCKED``: "database is locked");
* the data directory's disk is full (``ENOSPC``, ``EDQUOT``) or failing (``EIO``).

Everything else is not: an integrity or data error from a bad value stays the 4xx the route
gives it, and a programming error (SQLite "no such table", a syntax error, PostgreSQL class
``42``) stays a 500, though SQLAlchemy wraps some of those in ``OperationalError`` too.
"""

from __future__ import annotations

import errno
import sqlite3

import sqlalchemy as sa

from watchkeeper.errors import WatchkeeperError

RETRY_AFTER = 5  # seconds: what a client is told to wait before trying again

# PostgreSQL SQLSTATEs (classes by their first two characters)
_PG_CLASSES = ("08", "53")  # connection exception; insufficient resources (disk, memory)
_PG_STATES = ("57P01", "57P02", "57P03", "57P05", "55P03", "58030")
# SQLite primary result codes
_SQLITE_CODES = (
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
)
_SQLITE_TEXTS = ("database is locked", "database or disk is full", "disk i/o error")
_OS_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)


class StoreUnavailable(WatchkeeperError):
    """The database or the data directory's disk cannot take the request now (unreachable,
    connection lost, locked, full): nothing of the request was kept unless it was answered
    2xx before; retry after ``retry_after`` seconds."""

    http_status = 503
    exit_code = 3
    retry_after = RETRY_AFTER


def transient(exc: BaseException) -> bool:
    """A failure of the surroundings, not of the request or batch (see the module)."""
    if isinstance(exc, StoreUnavailable | sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return _driver_transient(exc.orig)
    return _driver_transient(exc)


def _driver_transient(exc: BaseException | None) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_CODES
        return any(text in str(exc).lower() for text in _SQLITE_TEXTS)
    if isinstance(exc, OSError):
        return exc.errno in _OS_ERRNOS or "No space left on device" in str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in _PG_CLASSES or sqlstate in _PG_STATES
    return _psycopg_lost(exc)


def _psycopg_lost(exc: BaseException | None) -> bool:
    """psycopg's errors without a SQLSTATE: the connection is gone, or could not be made."""
    try:
        import psycopg
    except ImportError:  # the extra "postgres" is not installed: no PostgreSQL errors either
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The 503 error to answer for ``exc`` when it is transient, else None."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if not transient(exc):
        return None
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    detail = " ".join(f"{type(cause).__name__}: {cause}".split())[:300]
    error = StoreUnavailable(f"the database or its disk is unavailable, retry later ({detail})")
    error.__cause__ = exc
    return error
