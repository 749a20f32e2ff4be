"""The SQLAlchemy engine of a database URL, the same behaviour on SQLite and PostgreSQL.

* PostgreSQL (psycopg 3): ``pool_pre_ping``, so a connection the server terminated or lost
  (a restart, ``pg_terminate_backend``, a failover) is found dead when it is taken from the
  pool and replaced, and the request after such a fault succeeds on its own.
* SQLite: WAL mode, ``synchronous=FULL``, foreign keys on; a write transaction takes the
  database's write lock at its start (``BEGIN IMMEDIATE``). A connection waits up to the busy
  timeout for a lock another connection holds — :data:`BUSY_TIMEOUT` seconds, or the
  ``timeout`` of the URL (``sqlite:///state.db?timeout=5``) — and then fails with "database
  is locked", which the API answers 503 (``store.faults``).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

WRITE_OPTION = "watchkeeper_write"  # execution option of a write transaction (see _begin)
BUSY_TIMEOUT = 30.0  # seconds a connection waits for a lock, unless the URL says otherwise


def busy_timeout(url: str) -> float:
    """How long a write waits for the database's lock: the ``timeout`` of a SQLite URL, else
    :data:`BUSY_TIMEOUT`."""
    if url.startswith("sqlite"):
        value = sa.engine.make_url(url).query.get("timeout")
        if value is not None:
            return float(value if isinstance(value, str) else value[-1])
    return BUSY_TIMEOUT


def create_engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship (extra "postgres")
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        args: dict[str, Any] = {"check_same_thread": False}
        if "timeout" not in sa.engine.make_url(url).query:  # else the driver reads the URL's
            args["timeout"] = BUSY_TIMEOUT
        engine = sa.create_engine(url, connect_args=args)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            _wal(cur, busy_timeout(url))
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A write transaction (Store.write) takes the database's write lock at its start,
            # so what it reads (stored ids, a batch's state, a profile) stays true until it
            # commits, also against other processes. Otherwise the driver begins a transaction
            # only at the first INSERT/UPDATE/DELETE: the reads before it see no lock.
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _wal(cur: Any, timeout: float = BUSY_TIMEOUT) -> None:
    """Put the SQLite file in WAL mode. Switching a new file to WAL needs its exclusive lock,
    and SQLite answers "database is locked" at once, without waiting out the busy timeout,
    while another process opening the same new file holds it: wait for that one here."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
