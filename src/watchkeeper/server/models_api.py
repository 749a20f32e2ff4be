"""The model routes: health, the model list, registration, status, metric series, quarantine
and the Prometheus exposition (the dead letters: ``server/dead_letters_api.py``).

Reads need the ``read`` scope, registration ``admin`` (``server/auth.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from watchkeeper import __version__
from watchkeeper.evaluation.evaluate import latest, series
from watchkeeper.evaluation.names import check_series
from watchkeeper.evaluation.performance import baseline
from watchkeeper.server.bodies import TABLE_TYPES, read_body, table_from_upload
from watchkeeper.server.deps import ProcessorDep, ServiceDep, SettingsDep, StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.openapi import request_body
from watchkeeper.server.params import MAX_INT, NO_NUL, Offset
from watchkeeper.server.schemas.ingest import (
    Health,
    History,
    MetricSeries,
    ModelList,
    ModelStatus,
    Quarantine,
    Registered,
)
from watchkeeper.store.history import HISTORY_KINDS, history

QUARANTINE_MAX = 10_000

router = APIRouter(tags=["models"], dependencies=[NO_NUL])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request, settings: SettingsDep) -> dict[str, object]:
    """Liveness: the process answers. Names the replica and the background roles it holds.
    Always open, even when tokens are required."""
    leases = getattr(request.app.state, "leases", None)
    roles = leases.roles() if leases is not None else []
    return {"status": "ok", "version": __version__, "replica": settings.replica_id, "leases": roles}


@router.get("/v1/models", response_model=ModelList, responses=errors(401, 403))
async def list_models(store: StoreDep) -> dict[str, list[str]]:
    """The registered model names."""
    return {"models": [m.name for m in await run_in_threadpool(store.models)]}


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


@router.put(
    "/v1/models/{model}/versions/{version}",
    status_code=201,
    response_model=Registered,
    responses=errors(400, 401, 403, 409, 413, 415, 422),
    openapi_extra=request_body(
        "the version's training reference", {kind: None for kind in TABLE_TYPES}
    ),
)
async def register(
    request: Request,
    model: str,
    version: str,
    service: ServiceDep,
    settings: SettingsDep,
    target: str | None = None,
    prediction: str | None = None,
    scores: Annotated[str | None, Query(description="score columns, comma-separated")] = None,
    segments: Annotated[str | None, Query(description="segment columns, comma-separated")] = None,
    features: Annotated[
        str | None, Query(description="columns to monitor as features, comma-separated")
    ] = None,
    ignore: Annotated[
        str | None, Query(description="columns to leave out of monitoring, comma-separated")
    ] = None,
    window_seconds: Annotated[
        int | None, Query(ge=0, description="the model's window; 0 or unset: the default")
    ] = None,
    champion: bool = True,
    drift_reference: Annotated[
        str | None, Query(description="training (the default) or previous_window")
    ] = None,
    constraints: Annotated[
        str | None,
        Query(
            description="validation rules as JSON text (a constraints document or a Great "
            "Expectations suite), or suggest: proposed from the reference"
        ),
    ] = None,
    on_violation: Annotated[
        str | None, Query(description="quarantine (the default) or count")
    ] = None,
    description: Annotated[str | None, Query(description="the model card's description")] = None,
    owner: Annotated[str | None, Query(description="who answers for the version")] = None,
    intended_use: Annotated[str | None, Query(description="what the version is meant for")] = None,
) -> object:
    """Register a model (if new) and a version; the body is its training reference (Parquet,
    CSV, Arrow). The model-level parameters take effect when the model is first registered.
    The answer's ``roles`` give each column's role and why; a column named in no parameter
    and looking like a score or an epoch time is not made a feature."""
    body = await read_body(request, settings.max_body_bytes)
    table = table_from_upload(body, request.headers.get("content-type"))
    return await run_in_threadpool(
        lambda: service.register(
            model,
            table,
            version=version,
            target=target,
            prediction=prediction,
            scores=_split(scores),
            segments=_split(segments),
            features=_split(features),
            ignore=_split(ignore),
            window_seconds=window_seconds or None,
            champion=champion,
            drift_reference=drift_reference,
            constraints=constraints,
            on_violation=on_violation,
            description=description,
            owner=owner,
            intended_use=intended_use,
        )
    )


@router.get("/v1/models/{model}", response_model=ModelStatus, responses=errors(400, 401, 403, 404))
async def model_status(model: str, service: ServiceDep, store: StoreDep) -> object:
    """Versions, champion, counters, pending events and the latest evaluated window."""
    status = await run_in_threadpool(service.status, model)
    status["latest_window"] = await run_in_threadpool(latest, store, model)
    return status


@router.get(
    "/v1/models/{model}/metrics",
    response_model=MetricSeries,
    responses=errors(400, 401, 403, 404, 422),
)
async def metric_series(
    model: str,
    store: StoreDep,
    metric: str,
    feature: str = "",
    version: str | None = None,
    segment: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> object:
    """A metric's time series: one point per evaluated window; a performance point's
    ``detail`` is its confidence interval, and ``baseline`` the metric over each version's
    training reference. An unknown metric, feature, version or segment column answers 404
    naming the valid ones."""
    await run_in_threadpool(
        lambda: check_series(
            store, model, metric, feature=feature, version=version, segment=segment
        )
    )
    points = await run_in_threadpool(
        lambda: series(
            store,
            model,
            metric,
            feature=feature,
            version=version,
            segment=segment,
            start=start,
            end=end,
        )
    )
    base = await run_in_threadpool(lambda: baseline(store, model, metric, version))
    return {
        "model": model,
        "metric": metric,
        "feature": feature,
        "points": points,
        "baseline": base,
    }


@router.get(
    "/v1/models/{model}/quarantine",
    response_model=Quarantine,
    responses=errors(400, 401, 403, 404, 422),
)
async def quarantine(
    model: str,
    store: StoreDep,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description=f"at most {QUARANTINE_MAX}")] = 100,
    offset: Offset = 0,
) -> object:
    """Rejected events with their reasons, oldest first."""
    await run_in_threadpool(store.model, model)
    rows = await run_in_threadpool(
        lambda: store.quarantine(model, limit=min(limit, QUARANTINE_MAX), offset=offset)
    )
    return {"model": model, "items": rows}


HISTORY_MAX = 1000


@router.get(
    "/v1/models/{model}/history",
    response_model=History,
    responses=errors(400, 401, 403, 404, 422),
)
async def model_history(
    model: str,
    store: StoreDep,
    since: Annotated[float | None, Query(allow_inf_nan=False, description="Unix seconds")] = None,
    until: Annotated[float | None, Query(allow_inf_nan=False, description="Unix seconds")] = None,
    kind: Annotated[
        list[Literal[HISTORY_KINDS]] | None,  # type: ignore[valid-type]
        Query(description="only these kinds (repeat the parameter for several)"),
    ] = None,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description=f"at most {HISTORY_MAX}")] = 200,
) -> object:
    """Every step of the model's life, newest first: versions registered, its alerts' state
    changes, and the actions (retraining jobs, webhooks) they started and how each ended."""
    await run_in_threadpool(store.model, model)
    limit = min(limit, HISTORY_MAX)
    events = await run_in_threadpool(
        lambda: history(store, model, since=since, until=until, kinds=kind, limit=limit)
    )
    return {"model": model, "events": events}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **errors(401, 403),
    },
)
async def metrics(request: Request, store: StoreDep, processor: ProcessorDep) -> Response:
    """The Prometheus exposition (docs/service.md#prometheus-and-grafana)."""
    from watchkeeper.server.metrics import render_metrics

    shadow = getattr(request.app.state, "shadow", None)
    body, content_type = await run_in_threadpool(render_metrics, store, processor, shadow)
    return Response(body, media_type=content_type)
