"""A model's failing slices per window (``GET /v1/models/{model}/slices``) and a version's
model card (``GET /v1/models/{model}/card``: JSON, HTML or Markdown); both need the ``read``
scope (``docs/slices.md``, ``docs/model-card.md``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from watchkeeper.card import model_card, to_html, to_markdown
from watchkeeper.evaluation.window_slices import read_slices, sentence, slice_windows
from watchkeeper.server.deps import StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.params import MAX_INT, NO_NUL
from watchkeeper.server.schemas.card import ModelCard, WindowSlices

router = APIRouter(tags=["models"], dependencies=[NO_NUL])

Version = Annotated[str | None, Query(description="the version; default the champion")]


@router.get(
    "/v1/models/{model}/slices",
    response_model=WindowSlices,
    responses=errors(400, 401, 403, 404, 422),
)
async def window_slices(
    model: str,
    store: StoreDep,
    version: Version = None,
    window: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT, description="the window's start (Unix seconds); default newest"),
    ] = None,
) -> object:
    """A labelled window's failing slices (the newest unless ``window`` is given): the
    segments and feature ranges where the model did significantly worse than on the rest of
    the window's labelled rows, ranked by impact; 404 names a model, version or window
    without them."""
    row = await run_in_threadpool(lambda: read_slices(store, model, version=version, window=window))
    windows = await run_in_threadpool(slice_windows, store, model, row["version"])
    return {
        "model": model,
        "version": row["version"],
        "window_start": row["window_start"],
        "window_seconds": row["window_seconds"],
        "computed_at": row["computed_at"],
        "labels": row["labels"],
        "sentence": sentence(row["result"]),
        "failing_slices": row["result"],
        "windows": windows,
    }


@router.get(
    "/v1/models/{model}/card",
    response_model=ModelCard,
    responses={
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "text/markdown": {"schema": {"type": "string"}},
            }
        },
        **errors(400, 401, 403, 404, 422),
    },
)
async def card(
    model: str,
    store: StoreDep,
    version: Version = None,
    format: Annotated[
        Literal["json", "html", "markdown"],
        Query(description="json (the default), html (one self-contained page) or markdown"),
    ] = "json",
) -> object:
    """A version's model card: registration metadata, training reference, reference and
    production performance, drift and alerts, failing slices, attributions and lineage."""
    data = await run_in_threadpool(model_card, store, model, version)
    if format == "html":
        return HTMLResponse(to_html(data))
    if format == "markdown":
        return PlainTextResponse(to_markdown(data), media_type="text/markdown; charset=utf-8")
    return data
