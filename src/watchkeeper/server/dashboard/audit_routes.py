"""The audit trail's page (``/ui/audit``): every recorded change in a table, newest first,
filtered by model, kind, actor and time, with links to export what the filters select as
JSON lines or CSV (``/ui/audit/export``). Both need the admin scope, as the API does."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from watchkeeper.errors import InputError
from watchkeeper.server.audit_api import MEDIA, csv_lines, jsonl_lines
from watchkeeper.server.dashboard.filters import input_time, parse_time
from watchkeeper.server.dashboard.render import page
from watchkeeper.server.dashboard.routes import Forbidden, _render, store_of
from watchkeeper.server.dashboard.session import Viewer
from watchkeeper.store import audit

PAGE = 100
FILTERS = ("model", "kind", "actor", "since", "until")

router = APIRouter(include_in_schema=False)


def _filters(request: Request) -> dict[str, Any]:
    """The page's filters from its query, checked: unknown kinds and bad times are a 400."""
    q = request.query_params
    given = {name: (q.get(name) or "").strip() for name in FILTERS}
    if given["kind"] and given["kind"] not in audit.KINDS:
        raise InputError(f"query parameter kind: use one of {', '.join(audit.KINDS)}")
    return {
        "model": given["model"] or None,
        "kinds": [given["kind"]] if given["kind"] else None,
        "actor": given["actor"] or None,
        "since": parse_time("since", given["since"]) if given["since"] else None,
        "until": parse_time("until", given["until"]) if given["until"] else None,
    }


def _admin(who: Viewer) -> None:
    if not who.can_act:
        raise Forbidden("your token has the read scope only: the audit trail needs admin")


@router.get("/ui/audit")
async def audit_page(request: Request, offset: int = 0) -> Response:
    store = store_of(request)

    def build(who: Viewer) -> Response:
        _admin(who)
        chosen = _filters(request)
        start = max(offset, 0)
        rows = audit.entries(store, **chosen, limit=PAGE + 1, offset=start)
        query = {k: v for k in FILTERS if (v := request.query_params.get(k))}
        context = {
            "viewer": who,
            "nav": "audit",
            "entries": rows[:PAGE],
            "more": len(rows) > PAGE,
            "offset": start,
            "limit": PAGE,
            "kinds": audit.KINDS,
            "models": [m.name for m in store.models()],
            "chosen": {
                "model": chosen["model"] or "",
                "kind": (chosen["kinds"] or [""])[0],
                "actor": chosen["actor"] or "",
                "since": input_time(chosen["since"]),
                "until": input_time(chosen["until"]),
            },
            "query": urlencode(query),
        }
        return page("audit.html.j2", context)

    return await _render(request, build)


@router.get("/ui/audit/export")
async def audit_export(request: Request, format: str = "jsonl") -> Response:
    store = store_of(request)

    def build(who: Viewer) -> Response:
        _admin(who)
        if format not in MEDIA:
            raise InputError("query parameter format: use jsonl or csv")
        rows = audit.export(store, **_filters(request))
        lines = jsonl_lines(rows) if format == "jsonl" else csv_lines(rows)
        return StreamingResponse(
            lines,
            media_type=MEDIA[format],
            headers={"content-disposition": f'attachment; filename="watchkeeper-audit.{format}"'},
        )

    return await _render(request, build)
