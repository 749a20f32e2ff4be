"""Leases: which replica does which background work, when several share one database.

Every replica (``watchkeeper serve`` process) ingests: a batch is acknowledged once it is
committed, whichever replica took it. The work after that is split by leases held in
PostgreSQL, as *session-level advisory locks* on one connection of the replica's own
(``application_name`` = its replica id, so ``pg_locks`` ⋈ ``pg_stat_activity`` names the
holder):

* **a logged batch** (:meth:`Leases.try_batch`): the processor of one replica takes it, the
  others skip it (``pg_try_advisory_lock``, never waits) and take the next ones, so the log is
  worked off by all replicas at once. Exactly once does not rest on the lease: a batch is
  indexed and applied in transactions that lock its row and check its ``processed`` flag
  (``store.log``); the lease only keeps two replicas from doing the same work.
* **a role** (:meth:`Leases.holds`): ``evaluator`` (window evaluation, the alert engine after
  each pass, the challengers' verdicts, retention) and ``jobs`` (retraining and webhook
  actions) run in one replica at a time. The outbox needs no lease: its rows are claimed
  with ``SELECT … FOR UPDATE SKIP LOCKED`` and leased by their ``next_attempt_at``.

Failover. The locks belong to the connection: when a replica dies (``kill -9``, an OOM kill)
its kernel closes the socket and PostgreSQL ends the session at once, freeing every lock; the
other replicas look for free roles every :attr:`Leases.heartbeat` seconds (``lease_seconds``
/ 5), so a role moves within that. When the replica's machine or network is lost instead,
TCP keepalives (set on both ends from ``lease_seconds``) end the session within
``lease_seconds``; the replica's own heartbeat (``SELECT 1`` on the lease connection) fails
first and it stops the roles' work before another can take them.

On SQLite there is one process doing background work: every lease is granted, and the
process holds an exclusive ``flock`` on ``<database>.background.lock`` so that a second
``watchkeeper serve`` on the same file refuses to start (:class:`LeaseError`) instead of
running a second evaluator.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from watchkeeper.errors import WatchkeeperError

log = logging.getLogger("watchkeeper.leases")

BATCH_SPACE = 0x776B62  # advisory lock keys (two int4 form): (BATCH_SPACE, batch id)
ROLE_SPACE = 0x776B72  # (ROLE_SPACE, role number)
ROLES = {"evaluator": 1, "jobs": 2}


class LeaseError(WatchkeeperError):
    """Background work cannot be leased: another process does it on the same SQLite file."""

    exit_code = 3


def default_replica_id() -> str:
    """``hostname-pid``: unique among the replicas of one database while they run."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _int4(n: int) -> int:
    """``n`` as a signed 32-bit key (batch ids past 2**31 wrap; a clash only makes two
    batches wait for each other's lease)."""
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


class Leases:
    """This replica's leases. ``exclusive`` (SQLite only): take the file's background lock
    (the server does; its processor child, which works for it, does not)."""

    def __init__(
        self, url: str, replica: str, *, lease_seconds: float = 10.0, exclusive: bool = True
    ) -> None:
        self.url, self.replica, self.lease_seconds = url, replica, lease_seconds
        self.heartbeat = lease_seconds / 5
        self.shared = url.startswith("postgresql")
        self._lock = threading.Lock()
        self._conn: sa.Connection | None = None
        self._engine: sa.Engine | None = None
        self._roles: set[str] = set()
        self._batches: set[int] = set()
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.exclusive = exclusive

    # ------------------------------------------------------------------ SQLite
    def _flock(self, url: str) -> None:
        database = sa.engine.make_url(url).database
        if not database or database == ":memory:":
            return
        path = Path(f"{database}.background.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise LeaseError(
                f"the SQLite database {database} is in use by another watchkeeper process"
                f"{f' ({holder})' if holder else ''}: SQLite runs one service process; use "
                "PostgreSQL (--database postgresql://...) to run several replicas"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"replica {self.replica}\n".encode())
        self._fd = fd

    # ------------------------------------------------------------------ the connection
    def _connection(self) -> sa.Connection:
        if self._conn is None:
            if self._engine is None:
                url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
                idle = max(1, round(self.lease_seconds / 2))
                interval = max(1, round(self.lease_seconds / 10))
                self._engine = sa.create_engine(
                    url,
                    poolclass=NullPool,
                    isolation_level="AUTOCOMMIT",  # session locks, never a transaction open
                    connect_args={
                        "application_name": f"watchkeeper {self.replica}"[:63],
                        "connect_timeout": max(1, round(self.lease_seconds / 2)),
                        "keepalives": 1,
                        "keepalives_idle": idle,
                        "keepalives_interval": interval,
                        "keepalives_count": 3,
                        "options": f"-c tcp_keepalives_idle={idle} "
                        f"-c tcp_keepalives_interval={interval} -c tcp_keepalives_count=3 "
                        f"-c statement_timeout={round(self.lease_seconds * 500)}",
                    },
                )
            self._conn = self._engine.connect()
        return self._conn

    def _lost(self, exc: BaseException) -> None:
        """The lease connection failed: every lease of it is gone (PostgreSQL frees them)."""
        if self._roles:
            log.warning("replica %s lost its leases %s: %s", self.replica, sorted(self._roles), exc)
        self._roles.clear()
        self._batches.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the connection is gone either way
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _try(self, space: int, key: int) -> bool:
        conn = self._connection()
        q = sa.text("SELECT pg_try_advisory_lock(:s, :k)")
        return bool(conn.execute(q, {"s": space, "k": _int4(key)}).scalar())

    def _unlock(self, space: int, key: int) -> None:
        conn = self._connection()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:s, :k)"), {"s": space, "k": _int4(key)})

    # ------------------------------------------------------------------ roles
    def holds(self, role: str) -> bool:
        """Whether this replica does ``role``'s work now: True when it holds the role's lease
        or has just taken it. Never waits for another replica."""
        if not self.shared:
            return True
        with self._lock:
            if role in self._roles:
                return True
            try:
                if self._try(ROLE_SPACE, ROLES[role]):
                    self._roles.add(role)
                    log.warning("replica %s took the %s lease", self.replica, role)
                    return True
            except Exception as exc:
                self._lost(exc)
            return False

    def roles(self) -> list[str]:
        return sorted(self._roles) if self.shared else sorted(ROLES)

    def holders(self) -> dict[str, str | None]:
        """Each role's holder (its replica id) as PostgreSQL sees it; this replica's own
        roles on SQLite."""
        if not self.shared:
            return dict.fromkeys(ROLES, self.replica)
        numbers = {n: role for role, n in ROLES.items()}
        found: dict[str, str | None] = dict.fromkeys(ROLES)
        q = sa.text(
            "SELECT l.objid, a.application_name FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = :space AND l.objsubid = 2 AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self._lock:
            try:
                rows = self._connection().execute(q, {"space": ROLE_SPACE}).all()
            except Exception as exc:
                self._lost(exc)
                return found
        for objid, name in rows:
            if int(objid) in numbers:
                found[numbers[int(objid)]] = str(name).removeprefix("watchkeeper ")
        return found

    # ------------------------------------------------------------------ batches
    def try_batch(self, batch_id: int) -> bool:
        """Take the batch's lease: False when another replica's processor has it."""
        if not self.shared:
            return True
        with self._lock:
            if batch_id in self._batches:
                return True
            try:
                if self._try(BATCH_SPACE, batch_id):
                    self._batches.add(batch_id)
                    return True
            except Exception as exc:
                self._lost(exc)
            return False

    def release_batches(self, batch_ids: list[int]) -> None:
        if not self.shared:
            return
        with self._lock:
            try:
                for batch_id in batch_ids:
                    if batch_id in self._batches:
                        self._unlock(BATCH_SPACE, batch_id)
                        self._batches.discard(batch_id)
            except Exception as exc:
                self._lost(exc)

    # ------------------------------------------------------------------ heartbeat
    def beat(self) -> bool:
        """Check the lease connection (``SELECT 1``); False, with every lease dropped, when
        it failed."""
        if not self.shared:
            return True
        with self._lock:
            if self._conn is None:
                return True  # nothing held: the next holds() connects
            try:
                self._conn.execute(sa.text("SELECT 1")).scalar()
                return True
            except Exception as exc:
                self._lost(exc)
                return False

    def start(self) -> None:
        """Start doing background work: on SQLite, take the file's lock (or raise
        :class:`LeaseError`); on PostgreSQL, beat every :attr:`heartbeat` seconds in a
        daemon thread."""
        if not self.shared:
            if self.exclusive and self._fd is None:
                self._flock(self.url)
            return
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.heartbeat):
                self.beat()

        self._thread = threading.Thread(target=loop, name="wk-leases", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Give every lease back (closing the connection frees them) and the SQLite lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self._roles.clear()
            self._batches.clear()
            if self._conn is not None:
                with contextlib.suppress(Exception):  # a dead one: its locks are gone anyway
                    self._conn.close()
                self._conn = None
            if self._engine is not None:
                self._engine.dispose()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def info(self) -> dict[str, Any]:
        return {"replica": self.replica, "roles": self.roles(), "shared": self.shared}
