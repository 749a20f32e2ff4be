"""The state store: one class over SQLAlchemy, the same code on SQLite and PostgreSQL.

Transactions have one shape: ``store.write(fn)`` runs ``fn(conn)`` in a write transaction
(locked, and run again when it lost a race with another process); the callers (``ingest``)
own the bodies and build them from the connection-level steps of ``store.log`` (``known_ids``,
``log_batch``, ``claim_batch``, ``add_index_rows``, ``claim_unprocessed``,
``put_bucket_profile``, ``mark_processed``, ``add_counts``). What this process remembers of
the stored state (the ids it has seen, the batches it has indexed) changes only once such a
transaction commits (``on_commit``).

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a committed transaction is
on disk; PostgreSQL commits are durable by default. A batch is written to the durable log in
one transaction: a 2xx is sent only after it commits.

Idempotency in two steps. On accept, the batch's prediction ids are checked against the ids
this process has seen (``known_ids``: an in-memory filter, see ``idfilter``; exact lookups
only for the few it may have seen), so a retried batch is answered "duplicates" at once and
stored nothing. Indexing later (the processor, or a label join that needs it first) writes
the batch's rows to the prediction index under its unique key; an id stored meanwhile by
another process is found there (``add_index_rows``), dropped from the batch and moved from
``events_total`` to ``duplicates_total`` in the same transaction. Accepting thus costs no
per-event index write on the request path, and the counters are exact once the log is
indexed.

Several processes may share one database (replicas on PostgreSQL, a tool beside the server on
SQLite): write transactions that read before they write (``Store.write``) lock what they read
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``) and run again when they
lost a race on a unique key, so a batch is stored once and applied to the profiles once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import sqlalchemy as sa

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.store import audit
from watchkeeper.store import tables as t
from watchkeeper.store.engine import WRITE_OPTION, busy_timeout, create_engine
from watchkeeper.store.faults import StoreUnavailable
from watchkeeper.store.idfilter import IdFilter
from watchkeeper.store.log import ID_CHUNK, LAST_EVENT_TIME, DurableLog
from watchkeeper.store.migrations import migrate

_T = TypeVar("_T")
log = logging.getLogger("watchkeeper.store")
__all__ = ["ConflictError", "ModelInfo", "NotFoundError", "Store", "create_engine"]

DRIFT_REFERENCES = ("training", "previous_window")
RETRIES = 3  # a write that lost a race with another process (unique key) is run again
# the counters' statements, built once: building one per call (its cache key included) cost
# more than running it, on every commit of the ingest path
_COUNTER = (t.counters.c.model == sa.bindparam("c_model")) & (
    t.counters.c.name == sa.bindparam("c_name")
)
ADD_COUNT = (
    t.counters.update().where(_COUNTER).values(value=t.counters.c.value + sa.bindparam("c_delta"))
)
RAISE_COUNT = (
    t.counters.update()
    .where(_COUNTER & (t.counters.c.value < sa.bindparam("c_value")))
    .values(value=sa.bindparam("c_value"))
)
COUNTER_VALUE = sa.select(t.counters.c.value).where(_COUNTER)
COUNTER_NAMES = sa.select(t.counters.c.name).where(
    (t.counters.c.model == sa.bindparam("c_model"))
    & t.counters.c.name.in_(sa.bindparam("c_names", expanding=True))
)
NEW_COUNT = t.counters.insert()


class NotFoundError(WatchkeeperError):
    """A model, version or other named object does not exist."""

    http_status = 404
    exit_code = 2


class ConflictError(WatchkeeperError):
    """The object exists already."""

    http_status = 409
    exit_code = 2


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: float
    champion: str | None
    window_seconds: int
    label_horizon_seconds: float
    retention_days: float
    segments: list[str]
    drift_reference: str = "training"  # or "previous_window": each window against the one before


class Store(DurableLog):
    """All reads and writes of service state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.lock_timeout = busy_timeout(url)  # a write waits no longer for this process's lock
        self.schema_version = migrate(self.engine)  # the Alembic revision in force
        self._write_lock = threading.RLock()  # one writer at a time: SQLite allows no more
        self._references: dict[tuple[str, str], tuple[Any, Any]] = {}
        # prediction ids this process has seen, per model; ids of batches not indexed yet
        self._seen: dict[str, IdFilter] = {}
        self._unindexed: dict[str, dict[int, set[str]]] = {}
        # batches this process has indexed, by (id, received_at): once retention has emptied
        # the log, SQLite hands out the same ids again
        self._indexed: set[tuple[int, float]] = set()
        self._on_commit: dict[sa.Connection, list[Callable[[], None]]] = {}
        # raised by every change of what serving reads (a version added, the champion or a
        # challenger changed, an artifact attached): caches of it compare this number
        self._generation_lock = threading.Lock()
        self.generation = 0

    def changed(self) -> None:
        """A model's versions, champion, challengers or artifacts changed (committed): the
        caches of this process that hold them read them again (``serving.metadata``)."""
        with self._generation_lock:  # no change is lost between threads
            self.generation += 1

    def close(self) -> None:
        self.engine.dispose()

    @overload
    def write(self) -> AbstractContextManager[sa.Connection]: ...

    @overload
    def write(self, fn: Callable[[sa.Connection], _T]) -> _T: ...

    def write(
        self, fn: Callable[[sa.Connection], _T] | None = None
    ) -> _T | AbstractContextManager[sa.Connection]:
        """One write transaction: one writer at a time in this process and, on SQLite, in the
        database from the transaction's start (``BEGIN IMMEDIATE``).

        ``store.write(fn)`` runs ``fn(conn)`` in it and returns what ``fn`` returns; when the
        transaction lost a race with another process (a unique key taken meanwhile, a
        deadlock) it rolls back and ``fn`` runs again in a new one, so ``fn`` must do all its
        reads through ``conn``. ``with store.write() as conn:`` is the same transaction for
        writes that cannot lose such a race, run once."""
        if fn is None:
            return self._transaction()
        return _retrying(self._run, fn)

    def _run(self, fn: Callable[[sa.Connection], _T]) -> _T:
        with self._transaction() as conn:
            return fn(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """Commit or raise; once committed, nothing after it (the on-commit actions, giving
        the connection back to the pool) turns the commit into an error: those failures are
        logged."""
        if not self._write_lock.acquire(timeout=self.lock_timeout):
            raise StoreUnavailable(
                f"the database is busy: another write of this process held it for over "
                f"{self.lock_timeout:g} s; retry later"
            )
        try:
            actions: list[Callable[[], None]] = []
            conn = self.engine.connect()
            try:
                conn.execution_options(**{WRITE_OPTION: True})
                self._on_commit[conn] = actions
                with conn.begin():
                    yield conn
            finally:
                self._on_commit.pop(conn, None)
                _close(conn)
            for action in actions:  # committed; still the only writer of this process
                try:
                    action()
                except Exception:  # the commit stands: this process's memory lags behind
                    log.exception("an action after a committed write failed")
        finally:
            self._write_lock.release()

    def on_commit(self, conn: sa.Connection, action: Callable[[], None]) -> None:
        """Run ``action`` once the write transaction of ``conn`` has committed (not at all
        when it rolls back): this process's memory of what is stored follows the database."""
        self._on_commit[conn].append(action)

    # ------------------------------------------------------------------ models
    def create_model(
        self,
        name: str,
        *,
        window_seconds: int,
        label_horizon_seconds: float,
        retention_days: float,
        segments: Sequence[str] = (),
        drift_reference: str = "training",
    ) -> ModelInfo:
        if drift_reference not in DRIFT_REFERENCES:
            raise InputError(
                f"drift_reference {drift_reference!r}: use one of {', '.join(DRIFT_REFERENCES)}"
            )
        row = {
            "name": name,
            "created_at": time.time(),
            "champion": None,
            "window_seconds": int(window_seconds),
            "label_horizon_seconds": float(label_horizon_seconds),
            "retention_days": float(retention_days),
            "segments": list(segments),
            "drift_reference": drift_reference,
        }
        with self.write() as conn:
            if conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first():
                raise ConflictError(f"model {name!r} exists already")
            conn.execute(t.models.insert().values(**row))
            settings = {k: v for k, v in row.items() if k not in ("name", "created_at")}
            audit.record(conn, "model_registered", name, model=name, after=settings)
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
        reference_performance: Mapping[str, Any] | None = None,
        reference_multivariate: bytes | None = None,
        reference_estimation: bytes | None = None,
        reference_attributions: Mapping[str, Any] | None = None,
        champion: bool = True,
        card: Mapping[str, Any] | None = None,
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
                    reference_performance=None
                    if reference_performance is None
                    else dict(reference_performance),
                    reference_multivariate=reference_multivariate,
                    reference_estimation=reference_estimation,
                    card=None if card is None else dict(card),
                    reference_attributions=None
                    if reference_attributions is None
                    else dict(reference_attributions),
                )
            )
            before = conn.execute(
                sa.select(t.models.c.champion).where(t.models.c.name == model)
            ).scalar()
            if champion:
                conn.execute(
                    t.models.update().where(t.models.c.name == model).values(champion=version)
                )
            audit.record(
                conn,
                "version_registered",
                f"{model}/{version}",
                model=model,
                before={"champion": before},
                after={
                    "champion": version if champion else before,
                    "reference_rows": reference_rows,
                    "columns": [c.get("name") for c in schema.get("columns", [])],
                    **({"card": dict(card)} if card else {}),
                },
            )
        self.changed()

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

    def reference_multivariate(self, model: str, version: str) -> bytes | None:
        """The version's PCA state (``multivariate.state``), or None: a version without two
        varying features, or registered before the service kept it."""
        v = t.versions.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(v.reference_multivariate).where(
                    (v.model == model) & (v.version == version)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version!r}")
        return None if row[0] is None else bytes(row[0])

    def reference_estimation(self, model: str, version: str) -> bytes | None:
        """The version's performance estimator (``estimation.state``), or None: a reference
        without the target, the prediction or a classifier's scores, or registered before the
        service kept it."""
        v = t.versions.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(v.reference_estimation).where((v.model == model) & (v.version == version))
            ).first()
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version!r}")
        return None if row[0] is None else bytes(row[0])

    def reference_attributions(self, model: str, version: str) -> dict[str, Any] | None:
        """The version's attribution shares (``{"shares": {feature: share}, "source",
        "method", "fidelity"}``: docs/explain.md), or None: neither a fitted Reference nor a
        served artifact gave them."""
        v = t.versions.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(v.reference_attributions).where(
                    (v.model == model) & (v.version == version)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version!r}")
        return None if row[0] is None else dict(row[0])

    def set_reference_attributions(
        self, model: str, version: str, value: Mapping[str, Any] | None
    ) -> None:
        """Keep (or clear) the version's attribution shares."""
        v = t.versions.c
        with self.write() as conn:
            done = conn.execute(
                t.versions.update()
                .where((v.model == model) & (v.version == version))
                .values(reference_attributions=None if value is None else dict(value))
            )
            if done.rowcount == 0:
                raise NotFoundError(f"model {model!r} has no version {version!r}")
        self.changed()

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

    def quarantine_add(self, model: str, rows: Iterable[dict[str, Any]]) -> int:
        """Keep rejected events with their reasons; return how many were added. A retried
        batch brings its rejected rows again: one whose prediction_id is quarantined already
        with the same reasons is not added (nor counted) twice."""
        now = time.time()
        items = [
            {
                "model": model,
                "received_at": now,
                # a NUL character (a reason to reject) cannot be stored in a text column
                "prediction_id": _storable(r.get("prediction_id")),
                "event": r["event"],
                "reasons": r["reasons"],
            }
            for r in rows
        ]
        if not items:
            return 0
        with self.write() as conn:
            ids = [str(i["prediction_id"]) for i in items if i["prediction_id"]]
            q = t.quarantine.c
            seen: set[tuple[str, str]] = set()
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                seen.update(
                    (pid, json.dumps(reasons, sort_keys=True))
                    for pid, reasons in conn.execute(
                        sa.select(q.prediction_id, q.reasons).where(
                            (q.model == model) & q.prediction_id.in_(chunk)
                        )
                    )
                )
            fresh = []
            for item in items:
                key = (str(item["prediction_id"]), json.dumps(item["reasons"], sort_keys=True))
                if not item["prediction_id"] or key not in seen:  # no id: no retry to know
                    fresh.append(item)
                    seen.add(key)
            if fresh:
                conn.execute(t.quarantine.insert(), fresh)
                self.add_counts(conn, model, {"quarantined_total": len(fresh)})
        return len(fresh)

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
    def add_counts(self, conn: sa.Connection, model: str, deltas: Mapping[str, int]) -> None:
        """Add to the model's counters inside a write transaction: one ``UPDATE`` for all
        (executed many times), an ``INSERT`` for a counter not there yet."""
        if not deltas:
            return
        params = [{"c_model": model, "c_name": n, "c_delta": d} for n, d in deltas.items()]
        if conn.execute(ADD_COUNT, params).rowcount == len(params):
            return
        names = {"c_model": model, "c_names": list(deltas)}
        there = set(conn.execute(COUNTER_NAMES, names).scalars())
        missing = [n for n in deltas if n not in there]
        if missing:
            new = [{"model": model, "name": n, "value": deltas[n]} for n in missing]
            conn.execute(NEW_COUNT, new)

    def raise_counts(self, conn: sa.Connection, model: str, values: Mapping[str, int]) -> None:
        """Raise the model's counters to at least ``values`` (a maintained maximum), inside a
        write transaction."""
        for name, value in values.items():
            counter = {"c_model": model, "c_name": name}
            if conn.execute(RAISE_COUNT, {**counter, "c_value": value}).rowcount:
                continue
            if conn.execute(COUNTER_VALUE, counter).first() is None:
                conn.execute(NEW_COUNT, {"model": model, "name": name, "value": value})

    def bump(self, model: str, deltas: Mapping[str, int]) -> None:
        with self.write() as conn:
            self.add_counts(conn, model, deltas)

    def counters(self, model: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.counters.c.name, t.counters.c.value).where(
                    (t.counters.c.model == model) & (t.counters.c.name != LAST_EVENT_TIME)
                )
            )  # counts only: the newest event time is read by last_event_time()
            return {name: int(value) for name, value in rows}

    def last_event_time(self, model: str) -> float | None:
        """The newest event time indexed for the model: a counter the index step maintains
        (microseconds), so reading it costs the same however many events there are."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(t.counters.c.value).where(
                    (t.counters.c.model == model) & (t.counters.c.name == LAST_EVENT_TIME)
                )
            ).scalar()
        return None if value is None else int(value) / 1e6


_RETRY_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock (PostgreSQL)


def _retrying(
    fn: Callable[[Callable[[sa.Connection], _T]], _T],
    body: Callable[[sa.Connection], _T],
) -> _T:
    """Run a write transaction again when it lost a race with another process: a unique key
    taken meanwhile (the rerun sees the row and treats it as stored), or a deadlock."""
    for attempt in range(RETRIES):
        try:
            return fn(body)
        except sa.exc.DBAPIError as exc:
            lost = isinstance(exc, sa.exc.IntegrityError) or (
                getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
            )
            if not lost or attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _close(conn: sa.Connection) -> None:
    """Give a connection back to the pool; a failure to (a connection lost meanwhile) is
    logged, never raised: it must not hide the transaction's own outcome."""
    try:
        conn.close()
    except Exception:
        log.warning("closing a database connection failed", exc_info=True)


def _storable(text: Any) -> Any:
    """Text a column can hold: a NUL character (PostgreSQL refuses it) shown as U+FFFD."""
    return text.replace("\x00", "\ufffd") if isinstance(text, str) else text


def check_name(kind: str, name: str) -> str:
    """Model and version names: 1-200 characters of letters, digits, '.', '_' and '-'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name or ""):
        raise InputError(
            f"{kind} name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
