"""The audit trail's routes: list it (``GET /v1/audit``) and export it as JSON lines or CSV
(``GET /v1/audit/export``), filtered by model, kind, time and actor. Both need the ``admin``
scope (``server/auth.py``). The rows are written by the changes themselves
(``store/audit.py``); :class:`LocalActor` names the actor of a server without tokens.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from watchkeeper.server.deps import StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.params import MAX_INT, NO_NUL, Offset
from watchkeeper.server.schemas.audit import AuditList
from watchkeeper.store import audit

LIST_MAX = 1000
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}  # csv: "; charset=utf-8" added

router = APIRouter(tags=["audit"], dependencies=[NO_NUL])

Since = Annotated[
    float | None, Query(allow_inf_nan=False, description="from this time on (Unix seconds)")
]
Until = Annotated[
    float | None, Query(allow_inf_nan=False, description="before this time (Unix seconds)")
]
Kinds = Annotated[
    list[Literal[audit.KINDS]] | None,  # type: ignore[valid-type]
    Query(description="only these kinds (repeat the parameter for several)"),
]


class LocalActor:
    """With tokens off, every change a request makes is recorded as ``local``'s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with audit.acting_as(audit.LOCAL):
            await self.app(scope, receive, send)


@router.get("/v1/audit", response_model=AuditList, responses=errors(400, 401, 403, 422))
async def list_audit(
    store: StoreDep,
    model: str | None = None,
    kind: Kinds = None,
    since: Since = None,
    until: Until = None,
    actor: Annotated[str | None, Query(description="only this actor's changes")] = None,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description=f"at most {LIST_MAX}")] = 100,
    offset: Offset = 0,
) -> object:
    """Every change recorded (who, when, what, before and after), newest first."""
    rows = await run_in_threadpool(
        lambda: audit.entries(
            store,
            model=model,
            kinds=kind,
            since=since,
            until=until,
            actor=actor,
            limit=min(limit, LIST_MAX),
            offset=offset,
        )
    )
    return {"entries": rows}


@router.get(
    "/v1/audit/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one change per line, oldest first",
            "content": {m: {"schema": {"type": "string"}} for m in MEDIA.values()},
        },
        **errors(400, 401, 403, 422),
    },
)
async def export_audit(
    store: StoreDep,
    format: Annotated[
        Literal["jsonl", "csv"], Query(description="jsonl (JSON lines) or csv")
    ] = "jsonl",
    model: str | None = None,
    kind: Kinds = None,
    since: Since = None,
    until: Until = None,
    actor: Annotated[str | None, Query(description="only this actor's changes")] = None,
) -> StreamingResponse:
    """Every change matching the filters, oldest first, as JSON lines or CSV (``before`` and
    ``after`` as JSON text)."""
    rows = audit.export(store, model=model, kinds=kind, since=since, until=until, actor=actor)
    lines = jsonl_lines(rows) if format == "jsonl" else csv_lines(rows)
    name = f"watchkeeper-audit.{format}"
    return StreamingResponse(
        lines,
        media_type=MEDIA[format],
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, separators=(",", ":")) + "\n"


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A header, then a row per change; ``before`` and ``after`` hold JSON text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(audit.FIELDS)
    for row in rows:
        writer.writerow(
            [
                *(row[f] for f in audit.FIELDS[:2]),
                *("" if row[f] is None else row[f] for f in ("actor", "kind", "model", "target")),
                json.dumps(row["before"]),
                json.dumps(row["after"]),
            ]
        )
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()
