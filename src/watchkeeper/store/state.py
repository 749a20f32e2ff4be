"""The state store: one class over SQLAlchemy, the same code on SQLite and PostgreSQL.

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a committed transaction is
on disk; PostgreSQL commits are durable by default. ``accept_batch`` writes the batch and the
index of its prediction ids in one transaction: a 2xx is sent only after it commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.store import tables as t

ID_CHUNK = 500  # ids per IN (...) lookup


class NotFoundError(WatchkeeperError):
    """A model, version or other named object does not exist."""

    http_status = 404
    exit_code = 2


class ConflictError(WatchkeeperError):
    """The object exists already."""

    http_status = 409
    exit_code = 2


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

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
        self._write_lock = threading.Lock()  # one writer at a time: SQLite allows no more

    def close(self) -> None:
        self.engine.dispose()

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
        with self._write_lock, self.engine.begin() as conn:
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
        with self._write_lock, self.engine.begin() as conn:
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
        ids = [r["prediction_id"] for r in index_rows]
        with self._write_lock, self.engine.begin() as conn:
            duplicates = self._existing_ids(conn, model, ids)
            keep = [r for r in index_rows if r["prediction_id"] not in duplicates]
            if not keep:
                return 0, duplicates
            if duplicates and make_payload is not None:
                payload = make_payload({r["prediction_id"] for r in keep})
            batch_id = conn.execute(
                t.batches.insert().values(
                    model=model,
                    version=version,
                    received_at=time.time(),
                    events=len(keep),
                    payload=payload,
                    processed=False,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                t.predictions.insert(),
                [{**r, "model": model, "version": version, "batch_id": batch_id} for r in keep],
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

    def bucket_profile(self, conn: sa.Connection, key: Mapping[str, Any]) -> dict[str, Any] | None:
        bp = t.bucket_profiles.c
        where = sa.and_(*(getattr(bp, k) == v for k, v in key.items()))
        row = conn.execute(sa.select(t.bucket_profiles).where(where)).mappings().first()
        return None if row is None else dict(row)

    def apply_batch(self, batch_id: int, merge: Any) -> None:
        """Mark a batch processed and write its bucket profiles, in one transaction.

        ``merge(read)`` gets a function reading the current row of a bucket key and returns
        the rows to write (each a full bucket_profiles row)."""
        with self._write_lock, self.engine.begin() as conn:
            done = conn.execute(
                sa.select(t.batches.c.processed).where(t.batches.c.id == batch_id)
            ).scalar()
            if done:
                return
            for row in merge(lambda key: self.bucket_profile(conn, key)):
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
        with self._write_lock, self.engine.begin() as conn:
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
        with self._write_lock, self.engine.begin() as conn:
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


def check_name(kind: str, name: str) -> str:
    """Model and version names: 1-200 characters of letters, digits, '.', '_' and '-'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name or ""):
        raise InputError(
            f"{kind} name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
