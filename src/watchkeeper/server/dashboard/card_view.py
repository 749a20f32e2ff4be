"""The dashboard's failing slices (the model page's section: the newest labelled window of
the range) and the model card page (``/ui/models/{model}/card``, ``?version=``: the card as
the CLI writes it, with a link back)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from watchkeeper.card import model_card, to_html
from watchkeeper.evaluation.window_slices import read_slices, sentence, slice_windows
from watchkeeper.server.dashboard.render import SECURITY_HEADERS
from watchkeeper.server.dashboard.routes import _render, store_of
from watchkeeper.server.dashboard.session import Viewer
from watchkeeper.store.state import Store

SHOWN = 10  # slices (and windows) listed on the model page

router = APIRouter(include_in_schema=False)


def failing_slices(store: Store, ctx: Any) -> dict[str, Any]:
    """The failing slices of the page's version and range: of the newest labelled window
    with labels enough to search (else the newest labelled one), ``window_start``,
    ``labels``, ``sentence``, ``slices`` (at most :data:`SHOWN`) and the search's figures;
    and ``windows``, the newest labelled windows of the range (at most :data:`SHOWN`) with
    their worst slice. ``{"window_start": None}`` when no labelled window is in range."""
    rng = ctx.range
    windows = [
        w
        for w in slice_windows(store, ctx.info.name, ctx.version)
        if (rng.start is None or w["window_start"] >= rng.start)
        and (rng.end is None or w["window_start"] < rng.end)
    ]
    if not windows:
        return {"window_start": None}
    shown = next((w for w in windows if w["searched"]), windows[0])
    row = read_slices(store, ctx.info.name, version=ctx.version, window=shown["window_start"])
    result = row["result"]
    return {
        "windows": windows[:SHOWN],
        "window_start": row["window_start"],
        "labels": row["labels"],
        "sentence": sentence(result),
        "slices": result["slices"][:SHOWN],
        "found": len(result["slices"]),
        "tested": result["tested"],
        "rows": result["rows"],
        "metric": result["metric"],
        "reason": result["reason"],
        "alpha": result["alpha"],
    }


@router.get("/ui/models/{model}/card")
async def card_page(request: Request, model: str, version: str | None = None) -> Response:
    store = store_of(request)

    def build(_who: Viewer) -> Response:
        data = model_card(store, model, version or None)
        back = f"/ui/models/{quote(model, safe='')}?version={quote(data['version'], safe='')}"
        return HTMLResponse(to_html(data, back=back), headers=SECURITY_HEADERS)

    return await _render(request, build)
