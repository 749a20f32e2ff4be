"""The ingest routes: prediction batches, actuals (labels) and CloudEvents (``ingest`` scope).

The bodies keep their hand-written, vectorised parsers (``ingest/events.py``): a batch of
thousands of events is never validated row by row in Python. The request models document
each accepted form; the responses are built directly (the hot path skips a second pass).
With ``ingest_fast_path`` on (the default) the three routes are answered ahead of the router
(``HANDLERS``, ``server/fastroute.py``) by the same endpoints.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from watchkeeper.ingest.events import ARROW_TYPES, PARQUET_TYPES
from watchkeeper.ingest.pushed import CONTENT_TYPE as PROFILE_TYPE
from watchkeeper.server.bodies import read_body
from watchkeeper.server.deps import ServiceDep, SettingsDep
from watchkeeper.server.errors import errors
from watchkeeper.server.fastroute import Handler, dumped
from watchkeeper.server.openapi import request_body
from watchkeeper.server.params import NO_NUL
from watchkeeper.server.schemas.ingest import (
    ActualsBody,
    ActualsResponse,
    CloudEvent,
    CloudEventResponse,
    IngestResponse,
    PredictionColumns,
    PredictionRows,
    ProfileResponse,
)

router = APIRouter(tags=["ingest"], dependencies=[NO_NUL])
JSON = "application/json"
OCTETS = "application/octet-stream"

PREDICTION_BODY = request_body(
    'a batch of prediction events: row JSON ({"events": [...]}; a bare list of events is '
    "accepted too), columnar JSON, or a flat table as an Arrow IPC stream or file, or Parquet "
    "(docs/service.md#the-prediction-event)",
    {
        "application/json": [PredictionRows, PredictionColumns],
        **{kind: None for kind in (*ARROW_TYPES, *PARQUET_TYPES)},
    },
)


@router.post(
    "/v1/models/{model}/predictions",
    response_model=IngestResponse,
    responses={
        422: {
            "model": IngestResponse,
            "description": "every event of the batch was rejected (each with its reasons)",
        },
        **errors(400, 401, 403, 404, 413, 415, 503),
    },
    openapi_extra=PREDICTION_BODY,
)
async def predictions(
    request: Request, model: str, service: ServiceDep, settings: SettingsDep
) -> JSONResponse:
    """Accept a batch durably: 200 with the counts (rejected events are quarantined with
    their reasons), 422 when every event is rejected."""
    body = await read_body(request, settings.max_body_bytes)
    result = await run_in_threadpool(
        service.ingest, model, body, request.headers.get("content-type")
    )
    everything_rejected = result.rejected and not result.accepted and not result.duplicates
    return JSONResponse(result.to_dict(), 422 if everything_rejected else 200)


@router.post(
    "/v1/models/{model}/actuals",
    response_model=ActualsResponse,
    responses=errors(400, 401, 403, 404, 413, 415),
    openapi_extra=request_body(
        'ground-truth labels ({"actuals": [...]} or a bare list)',
        {"application/json": ActualsBody},
    ),
)
async def actuals(
    request: Request, model: str, service: ServiceDep, settings: SettingsDep
) -> object:
    """Join labels to their predictions; a bad label is rejected alone, with its reason."""
    body = await read_body(request, settings.max_body_bytes)
    return await run_in_threadpool(service.actuals, model, body)


@router.post(
    "/v1/models/{model}/profiles",
    response_model=ProfileResponse,
    responses=errors(400, 401, 403, 404, 413, 415, 422),
    openapi_extra=request_body(
        "a window's profile, serialised (DatasetProfile.to_bytes, e.g. of "
        "watchkeeper.spark.profile) on the version's frozen spec (docs/spark.md)",
        {PROFILE_TYPE: None, OCTETS: None},
    ),
)
async def profiles(
    request: Request,
    model: str,
    service: ServiceDep,
    settings: SettingsDep,
    window: float,
    version: str | None = None,
) -> object:
    """Merge a window's profile computed elsewhere (a batch job on Spark) into the window
    that holds ``window`` (Unix seconds): the window is then evaluated as if its rows had
    been logged. 400 when the profile is unreadable or not on the version's frozen spec."""
    body = await read_body(request, settings.max_body_bytes)
    return await run_in_threadpool(service.log_profile, model, body, window, version)


@router.get(
    "/v1/models/{model}/profiles/reference",
    response_class=Response,
    responses={
        200: {
            "description": "the version's reference profile (DatasetProfile.to_bytes)",
            "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(400, 401, 403, 404, 422),
    },
)
async def reference_profile(
    model: str, service: ServiceDep, version: str | None = None
) -> Response:
    """The version's reference profile (the champion's when no version is given): its
    frozen spec and schema are what a pushed window profile must be built on."""
    blob = await run_in_threadpool(service.reference_profile, model, version)
    return Response(blob, media_type=OCTETS)


CLOUDEVENT_BODY = request_body(
    "a CloudEvent: structured mode, or binary mode (ce-id, ce-type, ... headers; the body is "
    "the request's or the response's data)",
    {"application/cloudevents+json": CloudEvent},
)
CLOUDEVENT_BODY["requestBody"]["content"]["application/json"] = {"schema": {}}


@router.post(
    "/v1/cloudevents",
    response_model=CloudEventResponse,
    responses=errors(400, 401, 403, 404, 413, 415, 503),
    openapi_extra=CLOUDEVENT_BODY,
)
async def cloudevents(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    model: str | None = None,
    version: str | None = None,
) -> object:
    """A KServe / Seldon request-logger target: request and response joined by event id."""
    body = await read_body(request, settings.max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await run_in_threadpool(service.cloudevent, headers, body, model, version)


# answered ahead of the router (server/fastroute.py: the checks of the routes' dependencies
# first), by the endpoints above: the same answers without FastAPI's route resolution


async def _fast_predictions(request: Request, params: dict[str, Any]) -> Response:
    state = request.app.state
    return await predictions(request, params["model"], state.service, state.settings)


async def _fast_actuals(request: Request, params: dict[str, Any]) -> Response:
    state = request.app.state
    answer = await actuals(request, params["model"], state.service, state.settings)
    return Response(dumped(answer, ActualsResponse, plain=False), media_type=JSON)


async def _fast_cloudevents(request: Request, params: dict[str, Any]) -> Response:
    state, query = request.app.state, request.query_params
    answer = await cloudevents(
        request, state.service, state.settings, query.get("model"), query.get("version")
    )
    return Response(dumped(answer, CloudEventResponse, plain=False), media_type=JSON)


HANDLERS: dict[str, Handler] = {
    "predictions": _fast_predictions,
    "actuals": _fast_actuals,
    "cloudevents": _fast_cloudevents,
}
