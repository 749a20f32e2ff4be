"""The alert routes: monitors, alerts with their history, silences, deliveries, retrain jobs.

Reads need the ``read`` scope, changes ``admin`` (``server/auth.py``: every non-GET route
here is a change). Monitors of the settings file are listed but read-only (409 on change).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from watchkeeper.alerts import queries
from watchkeeper.alerts.catalog import describe
from watchkeeper.alerts.silences import create_silence, expire_silence, silences
from watchkeeper.errors import InputError
from watchkeeper.server.bodies import read_json
from watchkeeper.server.deps import CatalogDep, SettingsDep, StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.openapi import request_body
from watchkeeper.server.params import NO_NUL, IdQuery, Limit, Offset, path_id
from watchkeeper.server.schemas.alerts import (
    AlertList,
    AlertWithHistory,
    DeliveryList,
    JobList,
    JobWithLog,
    MonitorList,
    MonitorOut,
    MonitorSpec,
    Silence,
    SilenceIn,
    SilenceList,
)

DELIVERY_STATUSES = ("pending", "sent", "failed", "silenced")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "timeout", "skipped")
SILENCE_FIELDS = {"matchers", "duration", "expires_at", "comment", "created_by"}

router = APIRouter(tags=["alerts"], dependencies=[NO_NUL])

AlertId = Annotated[int, path_id("an alert's id")]
READ = errors(401, 403, 422)
MONITOR_BODY = request_body("a monitor spec", {"application/json": MonitorSpec})


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise InputError(f"query parameter {name}: use one of {', '.join(allowed)}, got {value!r}")
    return value


# ---------------------------------------------------------------------- monitors
@router.get("/v1/monitors", response_model=MonitorList, responses=errors(401, 403))
async def list_monitors(store: StoreDep, catalog: CatalogDep) -> object:
    """Every monitor (settings file and API) with per target its latest verdict."""
    monitors = await run_in_threadpool(catalog.all)
    return {"monitors": [await run_in_threadpool(describe, store, m) for m in monitors]}


@router.post(
    "/v1/monitors",
    status_code=201,
    response_model=MonitorOut,
    responses=errors(400, 401, 403, 409, 415),
    openapi_extra=MONITOR_BODY,
)
async def add_monitor(request: Request, store: StoreDep, catalog: CatalogDep) -> object:
    """Create a monitor (the body is its spec, as in the settings file)."""
    spec = await read_json(request)
    monitor = await run_in_threadpool(lambda: catalog.put(spec, create=True))
    return await run_in_threadpool(describe, store, monitor)


@router.get("/v1/monitors/{name}", response_model=MonitorOut, responses=errors(400, 401, 403, 404))
async def get_monitor(name: str, store: StoreDep, catalog: CatalogDep) -> object:
    monitor = await run_in_threadpool(catalog.get, name)
    return await run_in_threadpool(describe, store, monitor)


@router.put(
    "/v1/monitors/{name}",
    response_model=MonitorOut,
    responses=errors(400, 401, 403, 409, 415),
    openapi_extra=MONITOR_BODY,
)
async def replace_monitor(
    name: str, request: Request, store: StoreDep, catalog: CatalogDep
) -> object:
    """Create or replace an API monitor; the body's name, if any, must be ``name``."""
    spec = await read_json(request)
    if not isinstance(spec, dict):
        raise InputError("body: expected a monitor spec (a JSON object)")
    if spec.setdefault("name", name) != name:
        raise InputError(f"body name {spec['name']!r} differs from the path's {name!r}")
    monitor = await run_in_threadpool(lambda: catalog.put(spec, create=False))
    return await run_in_threadpool(describe, store, monitor)


@router.delete(
    "/v1/monitors/{name}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 401, 403, 404, 409),
)
async def delete_monitor(name: str, catalog: CatalogDep) -> Response:
    """Delete an API monitor; its open alerts resolve at the next evaluation pass."""
    await run_in_threadpool(catalog.delete, name)
    return Response(status_code=204)


# ---------------------------------------------------------------------- alerts
@router.get("/v1/alerts", response_model=AlertList, responses=errors(400, 401, 403, 422))
async def list_alerts(
    store: StoreDep,
    settings: SettingsDep,
    model: str | None = None,
    state: Annotated[
        str | None, Query(description="pending, firing, resolved, cancelled or open")
    ] = None,
    monitor: str | None = None,
    severity: Annotated[str | None, Query(description="warning or critical")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Alerts, newest first."""
    _choice("state", state, (*queries.STATES, "open"))
    _choice("severity", severity, ("warning", "critical"))
    items = await run_in_threadpool(
        lambda: queries.list_alerts(
            store,
            model=model,
            state=state,
            monitor=monitor,
            severity=severity,
            limit=limit,
            offset=offset,
            public_url=settings.public_url,
        )
    )
    return {"alerts": items}


@router.get(
    "/v1/alerts/{alert_id}", response_model=AlertWithHistory, responses=errors(401, 403, 404, 422)
)
async def get_alert(alert_id: AlertId, store: StoreDep, settings: SettingsDep) -> object:
    """One alert with its history, deliveries and actions."""
    return await run_in_threadpool(
        lambda: queries.get_alert(store, alert_id, public_url=settings.public_url)
    )


# ---------------------------------------------------------------------- silences
@router.post(
    "/v1/silences",
    status_code=201,
    response_model=Silence,
    responses=errors(400, 401, 403, 415),
    openapi_extra=request_body("a silence", {"application/json": SilenceIn}),
)
async def add_silence(request: Request, store: StoreDep) -> object:
    """Silence the alerts the matchers select, for a duration or until ``expires_at``."""
    body: Any = await read_json(request)
    if not isinstance(body, dict):
        raise InputError("body: expected a JSON object with matchers and a duration")
    unknown = sorted(set(body) - SILENCE_FIELDS)
    if unknown:
        raise InputError(f"body: unknown field(s) {unknown}")
    return await run_in_threadpool(
        lambda: create_silence(
            store,
            body.get("matchers"),
            duration=body.get("duration"),
            expires_at=body.get("expires_at"),
            comment=body.get("comment", ""),
            created_by=body.get("created_by", ""),
        )
    )


@router.get("/v1/silences", response_model=SilenceList, responses=READ)
async def list_silences(
    store: StoreDep, active: bool | None = None, limit: Limit = 100, offset: Offset = 0
) -> object:
    """Silences, newest first; ``active``: only those in force now (or not)."""
    items = await run_in_threadpool(
        lambda: silences(store, active=active, limit=min(limit, 1000), offset=offset)
    )
    return {"silences": items}


@router.delete(
    "/v1/silences/{silence_id}", response_model=Silence, responses=errors(401, 403, 404, 422)
)
async def end_silence(
    silence_id: Annotated[int, path_id("a silence's id")], store: StoreDep
) -> object:
    """Expire a silence now; it stays in the list."""
    return await run_in_threadpool(expire_silence, store, silence_id)


# ---------------------------------------------------------------------- deliveries, jobs
@router.get("/v1/deliveries", response_model=DeliveryList, responses=errors(400, 401, 403, 422))
async def list_deliveries(
    store: StoreDep,
    status: Annotated[str | None, Query(description="pending, sent, failed or silenced")] = None,
    alert_id: IdQuery = None,
    notifier: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """The outbox: status, attempts, last error per (alert transition, notifier)."""
    _choice("status", status, DELIVERY_STATUSES)
    items = await run_in_threadpool(
        lambda: queries.list_deliveries(
            store, alert_id=alert_id, status=status, notifier=notifier, limit=limit, offset=offset
        )
    )
    return {"deliveries": items}


@router.get("/v1/retrain-jobs", response_model=JobList, responses=errors(400, 401, 403, 422))
async def list_jobs(
    store: StoreDep,
    model: str | None = None,
    status: Annotated[str | None, Query(description=", ".join(JOB_STATUSES))] = None,
    alert_id: IdQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Retraining and webhook actions, newest first."""
    _choice("status", status, JOB_STATUSES)
    items = await run_in_threadpool(
        lambda: queries.list_jobs(
            store, model=model, status=status, alert_id=alert_id, limit=limit, offset=offset
        )
    )
    return {"jobs": items}


@router.get(
    "/v1/retrain-jobs/{job_id}", response_model=JobWithLog, responses=errors(401, 403, 404, 422)
)
async def get_job(job_id: Annotated[int, path_id("a job's id")], store: StoreDep) -> object:
    """One job with its log."""
    return await run_in_threadpool(queries.get_job, store, job_id)
