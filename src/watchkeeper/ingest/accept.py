"""Accepting a batch of prediction events durably.

Back-pressure check → parse → validate per model version → rejected rows to quarantine (with
reasons) → accepted rows written to the durable log in one transaction (ids seen already
dropped: retries are idempotent) → the response. The processor later indexes, writes to the
lake and profiles the logged batches.

In the server, the model's row, its versions' schemas and the backlog come from memory
(``ingest.cache``) and the accepted rows are committed together with those of the requests
that arrive meanwhile (``ingest.writer``: group commit); the answer still waits for the
commit. Without them (a tool, a test) each batch reads what it needs and commits alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.ingest.bounds import Plausibility, fit_id
from watchkeeper.ingest.cache import ModelCache
from watchkeeper.ingest.events import PayloadTooLarge, parse_batch, to_ipc
from watchkeeper.ingest.spool import Record
from watchkeeper.ingest.validate import as_text, validate
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store

if TYPE_CHECKING:  # the writer builds on log_steps below
    from watchkeeper.ingest.writer import EventWriter


class Overloaded(WatchkeeperError):
    """Too many events wait to be processed: the client should retry later."""

    http_status = 503
    retry_after = 5


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # rules broken, counted

    def to_dict(self) -> dict[str, Any]:
        warnings = {"warnings": self.warnings} if self.warnings else {}
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "errors": [
                {"index": r["index"], "prediction_id": r["prediction_id"], "reasons": r["reasons"]}
                for r in self.rejected
            ],
            "ignored_fields": self.ignored_fields,
            **warnings,
        }


def accept(
    store: Store,
    settings: Settings,
    model: str,
    body: bytes,
    content_type: str | None,
    *,
    cache: ModelCache | None = None,
    writer: EventWriter | None = None,
) -> IngestResult:
    """Parse, validate and durably log a batch of the model's prediction events."""
    cache = cache or ModelCache(store, seconds=0)
    cache.model(model)
    waiting = writer.pending() if writer is not None else 0
    pending = cache.pending_events() + waiting
    if pending > settings.max_pending_events:  # refused only on a count read now
        pending = cache.pending_events(fresh=True) + waiting
    check_backlog(store, settings, pending)
    table = parse_batch(body, content_type)
    if table.num_rows > settings.max_batch_events:
        raise PayloadTooLarge(
            f"batch of {table.num_rows} events; the limit is {settings.max_batch_events}"
        )
    return accept_table(store, settings, model, table, cache=cache, writer=writer)


def check_backlog(store: Store, settings: Settings, pending: int | None = None) -> None:
    """:class:`Overloaded` (503) while too many events wait to be processed: ``pending``,
    or else the log's count of them."""
    if pending is None:
        pending = store.pending_events()
    if pending > settings.max_pending_events:
        raise Overloaded(
            f"{pending} events wait to be processed (the limit is "
            f"{settings.max_pending_events}); retry later"
        )


def accept_table(
    store: Store,
    settings: Settings,
    model: str,
    table: pa.Table,
    *,
    cache: ModelCache | None = None,
    writer: EventWriter | None = None,
) -> IngestResult:
    """Validate and durably log events already in the flat table shape (``parse_batch``'s):
    the path of a batch once parsed, and of the serving endpoints' events (in process)."""
    cache = cache or ModelCache(store, seconds=0)
    info = cache.model(model)
    if info.champion is None:
        raise InputError(f"model {model!r} has no version yet: register one with a reference")
    if "version" in table.column_names:
        given = pc.fill_null(as_text(table.column("version").combine_chunks()), info.champion)
        table = table.drop_columns(["version"])
        versions = pc.unique(given).to_pylist()
    else:
        given = pa.array([info.champion] * table.num_rows, pa.string())
        versions = [info.champion]
    table = table.append_column("version", given)
    result = IngestResult(0, 0)
    plausible = Plausibility.from_settings(settings)
    records: list[Record] = []
    warned: list[tuple[list[dict[str, Any]], Any]] = []  # per record: warnings, positions
    for version in versions:
        if len(versions) == 1:
            part, positions = table, np.arange(table.num_rows)
        else:
            mask = pc.equal(table.column("version"), version)
            part = table.filter(mask)
            positions = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
        if not cache.has_version(model, version):
            result.rejected.extend(_unknown_version(part, positions, version))
            continue
        known = cache.version(model, version)
        checked = validate(
            part, known.schema, plausible=plausible, positive_score=known.positive_score
        )
        for r in checked.rejected:
            r["index"] = int(positions[r["index"]])
        result.rejected.extend(checked.rejected)
        result.ignored_fields = sorted(set(result.ignored_fields) | set(checked.ignored_fields))
        flagged = frozenset(w["prediction_id"] for w in checked.warnings)
        records.append(Record(model, version, checked.accepted, flagged))
        warned.append((checked.warnings, positions))
    if writer is not None and writer.running:  # else (an app not started) each alone
        logged = writer.commit(records)
    else:
        logged = [log_batch(store, model, r.version, r.table, set(r.flagged)) for r in records]
    for (stored, dupes), (warnings, positions) in zip(logged, warned, strict=True):
        result.accepted += stored
        result.duplicates += len(dupes)
        for w in warnings:
            if w["prediction_id"] not in dupes:
                result.warnings.append({**w, "index": int(positions[w["index"]])})
    cache.logged(result.accepted)
    if result.rejected:
        store.quarantine_add(model, result.rejected)
    result.rejected.sort(key=lambda r: r["index"])
    return result


def _unknown_version(part: pa.Table, positions: Any, version: str) -> list[dict[str, Any]]:
    return [
        {
            "index": int(positions[local]),
            "prediction_id": fit_id(row.get("prediction_id")),
            "event": {
                k: (v if isinstance(v, str | int | float | bool) or v is None else str(v))
                for k, v in row.items()
            },
            "reasons": [{"field": "version", "problem": f"unknown version {version!r}"}],
        }
        for local, row in enumerate(part.to_pylist())
    ]


def log_batch(
    store: Store, model: str, version: str, table: pa.Table, flagged: set[str] | None = None
) -> tuple[int, set[str]]:
    """Write validated events of one version to the durable log; rows whose prediction_id is
    stored already are dropped. Returns (events stored, duplicate ids). Idempotent: a retried
    batch stores nothing. The ``flagged`` ids (accepted although they break a validation
    rule) that are stored are counted in ``violations_total``, in the same transaction."""
    if table.num_rows == 0:
        return 0, set()
    return store.write(log_steps(store, model, version, table, flagged))


def log_steps(
    store: Store,
    model: str,
    version: str,
    table: pa.Table,
    flagged: set[str] | None = None,
    *,
    count_duplicates: bool = True,
) -> Callable[[sa.Connection], tuple[int, set[str]]]:
    """The steps of :func:`log_batch` in a write transaction of the caller's (several batches
    may share one: ``ingest.writer``); ``count_duplicates=False`` for a replay, whose ids
    may have been stored before the process ended, not sent twice."""
    table = table.drop_columns(["version"]) if "version" in table.column_names else table
    column = table.column("prediction_id")
    ids: list[str] = column.to_pylist()
    payload = to_ipc(table)

    def body(conn: sa.Connection) -> tuple[int, set[str]]:
        duplicates = store.known_ids(conn, model, ids)
        if duplicates and count_duplicates:
            store.add_counts(conn, model, {"duplicates_total": len(duplicates)})
        keep = [i for i in ids if i not in duplicates] if duplicates else ids
        if not keep:
            return 0, duplicates
        data = payload
        if duplicates:
            data = to_ipc(table.filter(pc.is_in(column, pa.array(sorted(keep), pa.string()))))
        store.log_batch(conn, model, version, data, keep)
        store.add_counts(conn, model, {"events_total": len(keep)})
        violations = len(flagged - duplicates) if flagged else 0
        if violations:
            store.add_counts(conn, model, {"violations_total": violations})
        return len(keep), duplicates

    return body
