"""The state store: one class over SQLAlchemy, the same code on SQLite and PostgreSQL.

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a committed transaction is
on disk; PostgreSQL commits are durable by default. ``accept_batch`` writes the batch and the
index of its prediction ids in one transaction: a 2xx is sent only after it commits.

Several processes may share one database (replicas on PostgreSQL, a tool beside the server on
SQLite): write transactions that read before they write (``Store.write``) lock what they read
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``) and run again when they
lost a race on a unique key, so a batch is stored once and applied to the profiles once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.store import tables as t

_T = TypeVar("_T")

ID_CHUNK = 500  # ids per IN (...) lookup
WRITE_OPTION = "watchkeeper_write"  # execution option of a write transaction (see _begin)
RETRIES = 3  # a write that lost a race with another process (unique key) is run again


class NotFoundError(WatchkeeperError):
    """A model, version or other named object does not exist."""

    http_status = 404
    exit_code = 2


class ConflictError(WatchkeeperError):
    """The object exists already."""

    http_status = 409
    exit_code = 2


def create_engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship (extra "postgres")
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
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


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: float
    champion: str | None
    window_seconds: int
    label_horizon_seconds: float
    retention_days: float
    segments: list[str]


class Store:
    """All reads and writes of service state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.schema_version = t.migrate(self.engine)
        self._write_lock = threading.Lock()
        self._references: dict[
            tuple[str, str], tuple[Any, Any]
        ] = {}  # one writer at a time: SQLite allows no more

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction: one writer at a time in this process and, on SQLite, in the
        database from the transaction's start (``BEGIN IMMEDIATE``)."""
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    # ------------------------------------------------------------------ models
    def create_model(
        self,
        name: str,
        *,
        window_seconds: int,
        label_horizon_seconds: float,
        retention_days: float,
        segments: Sequence[str] = (),
    ) -> ModelInfo:
        row = {
            "name": name,
            "created_at": time.time(),
            "champion": None,
            "window_seconds": int(window_seconds),
            "label_horizon_seconds": float(label_horizon_seconds),
            "retention_days": float(retention_days),
            "segments": list(segments),
        }
        with self.write() as conn:
            if conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first():
                raise ConflictError(f"model {name!r} exists already")
            conn.execute(t.models.insert().values(**row))
        return ModelInfo(**row)  # type: ignore[arg-type]

    def model(self, name: str) -> ModelInfo:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.models).where(t.models.c.name == name)).mappings().first()
            )
        if row is None:
            raise NotFoundError(f"model {name!r} is not registered")
        return ModelInfo(**dict(row))

    def models(self) -> list[ModelInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.models).order_by(t.models.c.name)).mappings().all()
        return [ModelInfo(**dict(r)) for r in rows]

    def add_version(
        self,
        model: str,
        version: str,
        *,
        schema: Mapping[str, Any],
        reference_profile: bytes,
        reference_rows: int,
        reference_sample: bytes | None,
        champion: bool = True,
    ) -> None:
        self.model(model)
        with self.write() as conn:
            exists = conn.execute(
                sa.select(t.versions.c.version).where(
                    (t.versions.c.model == model) & (t.versions.c.version == version)
                )
            ).first()
            if exists:
                raise ConflictError(f"model {model!r} has a version {version!r} already")
            conn.execute(
                t.versions.insert().values(
                    model=model,
                    version=version,
                    created_at=time.time(),
                    schema=dict(schema),
                    reference_profile=reference_profile,
                    reference_rows=reference_rows,
                    reference_sample=reference_sample,
                )
            )
            if champion:
                conn.execute(
                    t.models.update().where(t.models.c.name == model).values(champion=version)
                )

    def reference(self, model: str, version: str) -> tuple[Any, Any]:
        """(Schema, reference DatasetProfile) of a version, decoded once: versions never
        change after they are added."""
        from watchkeeper.profiles import DatasetProfile
        from watchkeeper.schema import Schema

        key = (model, version)
        if key not in self._references:
            row = self.version(model, version)
            self._references[key] = (
                Schema.from_dict(row["schema"]),
                DatasetProfile.from_bytes(row["reference_profile"]),
            )
        return self._references[key]

    def versions(self, model: str) -> list[dict[str, Any]]:
        cols = [t.versions.c.version, t.versions.c.created_at, t.versions.c.reference_rows]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols)
                .where(t.versions.c.model == model)
                .order_by(t.versions.c.created_at)
            ).mappings()
            return [dict(r) for r in rows]

    def version(self, model: str, version: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.versions).where(
                        (t.versions.c.model == model) & (t.versions.c.version == version)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version!r}")
        return dict(row)

    # ------------------------------------------------------------------ ingest
    def _existing_ids(self, conn: sa.Connection, model: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        col = t.predictions.c.prediction_id
        for start in range(0, len(ids), ID_CHUNK):
            chunk = list(ids[start : start + ID_CHUNK])
            q = sa.select(col).where((t.predictions.c.model == model) & col.in_(chunk))
            found.update(conn.execute(q).scalars())
        return found

    def accept_batch(
        self,
        model: str,
        version: str,
        payload: bytes,
        index_rows: list[dict[str, Any]],
        make_payload: Any = None,
    ) -> tuple[int, set[str]]:
        """Store a batch durably; rows whose prediction_id is stored already are dropped.

        ``index_rows`` carry prediction_id, event_time, bucket, segment, prediction, score.
        ``make_payload(kept_ids)``, when given, rebuilds the payload without duplicates.
        Returns (events stored, duplicate ids). Idempotent: a retried batch stores nothing.
        """
        return _retrying(self._accept_batch, model, version, payload, index_rows, make_payload)

    def _accept_batch(
        self,
        model: str,
        version: str,
        payload: bytes,
        index_rows: list[dict[str, Any]],
        make_payload: Any,
    ) -> tuple[int, set[str]]:
        ids = [r["prediction_id"] for r in index_rows]
        with self.write() as conn:
            duplicates = self._existing_ids(conn, model, ids)
            keep = [r for r in index_rows if r["prediction_id"] not in duplicates]
            if not keep:
                return 0, duplicates
            if duplicates and make_payload is not None:
                payload = make_payload({r["prediction_id"] for r in keep})
            received = time.time()
            batch_id = conn.execute(
                t.batches.insert().values(
                    model=model,
                    version=version,
                    received_at=received,
                    events=len(keep),
                    payload=payload,
                    processed=False,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                t.predictions.insert(),
                [
                    {
                        **r,
                        "model": model,
                        "version": version,
                        "batch_id": batch_id,
                        "received_at": received,
                    }
                    for r in keep
                ],
            )
            self._bump(conn, model, {"events_total": len(keep)})
        return len(keep), duplicates

    def pending_batches(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.batches)
                .where(t.batches.c.processed.is_(False))
                .order_by(t.batches.c.id)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def pending_events(self) -> int:
        with self.engine.connect() as conn:
            q = sa.select(sa.func.coalesce(sa.func.sum(t.batches.c.events), 0)).where(
                t.batches.c.processed.is_(False)
            )
            return int(conn.execute(q).scalar() or 0)

    def bucket_profile(
        self, conn: sa.Connection, key: Mapping[str, Any], *, lock: bool = False
    ) -> dict[str, Any] | None:
        """The row of a bucket key; ``lock``: held until the transaction ends (PostgreSQL)."""
        bp = t.bucket_profiles.c
        where = sa.and_(*(getattr(bp, k) == v for k, v in key.items()))
        q = sa.select(t.bucket_profiles).where(where)
        row = conn.execute(q.with_for_update() if lock else q).mappings().first()
        return None if row is None else dict(row)

    def apply_batch(self, batch_id: int, merge: Any) -> None:
        """Mark a batch processed and write its bucket profiles, in one transaction.

        ``merge(read)`` gets a function reading the current row of a bucket key and returns
        the rows to write (each a full bucket_profiles row)."""
        _retrying(self._apply_batch, batch_id, merge)

    def _apply_batch(self, batch_id: int, merge: Any) -> None:
        with self.write() as conn:
            # locked: another process applying the same batch waits here, then sees it done
            done = conn.execute(
                sa.select(t.batches.c.processed).where(t.batches.c.id == batch_id).with_for_update()
            ).scalar()
            if done is None or done:  # processed, or processed and swept by retention
                return
            for row in merge(lambda key: self.bucket_profile(conn, key, lock=True)):
                key = {k: row[k] for k in ("model", "version", "segment", "granularity", "bucket")}
                bp = t.bucket_profiles.c
                where = sa.and_(*(getattr(bp, k) == v for k, v in key.items()))
                values = {k: v for k, v in row.items() if k not in key}
                if not conn.execute(
                    t.bucket_profiles.update().where(where).values(**values)
                ).rowcount:
                    conn.execute(t.bucket_profiles.insert().values(**row))
            conn.execute(
                t.batches.update().where(t.batches.c.id == batch_id).values(processed=True)
            )

    def bucket_profiles(
        self,
        model: str,
        *,
        granularity: int,
        start: int | None = None,
        end: int | None = None,
        version: str | None = None,
        segment: str | None = None,
    ) -> list[dict[str, Any]]:
        bp = t.bucket_profiles.c
        q = sa.select(t.bucket_profiles).where(
            (bp.model == model) & (bp.granularity == granularity)
        )
        if start is not None:
            q = q.where(bp.bucket >= start)
        if end is not None:
            q = q.where(bp.bucket < end)
        if version is not None:
            q = q.where(bp.version == version)
        if segment is not None:
            q = q.where(bp.segment == segment)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(bp.bucket)).mappings()]

    def quarantine_add(self, model: str, rows: Iterable[dict[str, Any]]) -> int:
        now = time.time()
        items = [
            {
                "model": model,
                "received_at": now,
                "prediction_id": r.get("prediction_id"),
                "event": r["event"],
                "reasons": r["reasons"],
            }
            for r in rows
        ]
        if not items:
            return 0
        with self.write() as conn:
            conn.execute(t.quarantine.insert(), items)
            self._bump(conn, model, {"quarantined_total": len(items)})
        return len(items)

    def quarantine(self, model: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.quarantine)
                .where(t.quarantine.c.model == model)
                .order_by(t.quarantine.c.id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ counters
    def _bump(self, conn: sa.Connection, model: str, deltas: Mapping[str, int]) -> None:
        for name, delta in deltas.items():
            where = (t.counters.c.model == model) & (t.counters.c.name == name)
            done = conn.execute(
                t.counters.update().where(where).values(value=t.counters.c.value + delta)
            ).rowcount
            if not done:
                conn.execute(t.counters.insert().values(model=model, name=name, value=delta))

    def bump(self, model: str, deltas: Mapping[str, int]) -> None:
        with self.write() as conn:
            self._bump(conn, model, deltas)

    def counters(self, model: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.counters.c.name, t.counters.c.value).where(t.counters.c.model == model)
            )
            return {name: int(value) for name, value in rows}

    def last_event_time(self, model: str) -> float | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(t.predictions.c.event_time)).where(
                    t.predictions.c.model == model
                )
            ).scalar()
        return None if value is None else float(value)


_RETRY_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock (PostgreSQL)


def _retrying(fn: Callable[..., _T], *args: Any) -> _T:
    """Run a write transaction again when it lost a race with another process: a unique key
    taken meanwhile (the rerun sees the row and treats it as stored), or a deadlock."""
    for attempt in range(RETRIES):
        try:
            return fn(*args)
        except sa.exc.DBAPIError as exc:
            lost = isinstance(exc, sa.exc.IntegrityError) or (
                getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
            )
            if not lost or attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def check_name(kind: str, name: str) -> str:
    """Model and version names: 1-200 characters of letters, digits, '.', '_' and '-'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name or ""):
        raise InputError(
            f"{kind} name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
