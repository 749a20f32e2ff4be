"""The alert routes: monitors, alerts with their history, silences, deliveries, retrain jobs.

Reads need the ``read`` scope, changes ``admin`` (``server/auth.py``: every non-GET route
here is a change). Monitors of the settings file are listed but read-only (409 on change).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from watchkeeper.alerts import queries
from watchkeeper.alerts.catalog import Catalog, describe
from watchkeeper.alerts.silences import create_silence, expire_silence, silences
from watchkeeper.errors import InputError
from watchkeeper.store.state import Store

DELIVERY_STATUSES = ("pending", "sent", "failed", "silenced")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "timeout", "skipped")


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise InputError(f"query parameter {name}: use one of {', '.join(allowed)}, got {value!r}")
    return value


async def _json(request: Request) -> Any:
    import json

    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None


def add_alert_routes(
    router: FastAPI | APIRouter, store: Store, catalog: Catalog, *, public_url: str = ""
) -> None:
    """Register the routes on ``router`` (the app itself: routes added with ``include_router``
    are not listed one by one in ``app.routes`` by recent FastAPI releases)."""

    # ------------------------------------------------------------------ monitors
    @router.get("/v1/monitors")
    async def list_monitors() -> dict[str, Any]:
        monitors = await run_in_threadpool(catalog.all)
        return {
            "monitors": [await run_in_threadpool(describe, store, m) for m in monitors],
        }

    @router.post("/v1/monitors", status_code=201)
    async def add_monitor(request: Request) -> dict[str, Any]:
        """Create a monitor (the body is its spec, as in the settings file)."""
        spec = await _json(request)
        monitor = await run_in_threadpool(lambda: catalog.put(spec, create=True))
        return await run_in_threadpool(describe, store, monitor)

    @router.get("/v1/monitors/{name}")
    async def get_monitor(name: str) -> dict[str, Any]:
        monitor = await run_in_threadpool(catalog.get, name)
        return await run_in_threadpool(describe, store, monitor)

    @router.put("/v1/monitors/{name}")
    async def replace_monitor(name: str, request: Request) -> dict[str, Any]:
        """Create or replace an API monitor; the body's name, if any, must be ``name``."""
        spec = await _json(request)
        if not isinstance(spec, dict):
            raise InputError("body: expected a monitor spec (a JSON object)")
        if spec.setdefault("name", name) != name:
            raise InputError(f"body name {spec['name']!r} differs from the path's {name!r}")
        monitor = await run_in_threadpool(lambda: catalog.put(spec, create=False))
        return await run_in_threadpool(describe, store, monitor)

    @router.delete("/v1/monitors/{name}", status_code=204)
    async def delete_monitor(name: str) -> Response:
        await run_in_threadpool(catalog.delete, name)
        return Response(status_code=204)

    # ------------------------------------------------------------------ alerts
    @router.get("/v1/alerts")
    async def list_alerts(
        model: str | None = None,
        state: str | None = None,
        monitor: str | None = None,
        severity: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Alerts, newest first; ``state`` pending, firing, resolved, cancelled or open."""
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
                public_url=public_url,
            )
        )
        return {"alerts": items}

    @router.get("/v1/alerts/{alert_id}")
    async def get_alert(alert_id: int) -> dict[str, Any]:
        """One alert with its history, deliveries and actions."""
        return await run_in_threadpool(
            lambda: queries.get_alert(store, alert_id, public_url=public_url)
        )

    # ------------------------------------------------------------------ silences
    @router.post("/v1/silences", status_code=201)
    async def add_silence(request: Request) -> dict[str, Any]:
        """``{"matchers": {...}, "duration": "2h"`` or ``"expires_at": unix``, ``"comment",
        "created_by"}``."""
        body = await _json(request)
        if not isinstance(body, dict):
            raise InputError("body: expected a JSON object with matchers and a duration")
        unknown = sorted(
            set(body) - {"matchers", "duration", "expires_at", "comment", "created_by"}
        )
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

    @router.get("/v1/silences")
    async def list_silences(
        active: bool | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        items = await run_in_threadpool(
            lambda: silences(store, active=active, limit=min(limit, 1000), offset=offset)
        )
        return {"silences": items}

    @router.delete("/v1/silences/{silence_id}")
    async def expire(silence_id: int) -> dict[str, Any]:
        """Expire a silence now; it stays in the list."""
        return await run_in_threadpool(expire_silence, store, silence_id)

    # ------------------------------------------------------------------ deliveries, jobs
    @router.get("/v1/deliveries")
    async def list_deliveries(
        status: str | None = None,
        alert_id: int | None = None,
        notifier: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """The outbox: status, attempts, last error per (alert transition, notifier)."""
        _choice("status", status, DELIVERY_STATUSES)
        items = await run_in_threadpool(
            lambda: queries.list_deliveries(
                store,
                alert_id=alert_id,
                status=status,
                notifier=notifier,
                limit=limit,
                offset=offset,
            )
        )
        return {"deliveries": items}

    @router.get("/v1/retrain-jobs")
    async def list_jobs(
        model: str | None = None,
        status: str | None = None,
        alert_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        _choice("status", status, JOB_STATUSES)
        items = await run_in_threadpool(
            lambda: queries.list_jobs(
                store, model=model, status=status, alert_id=alert_id, limit=limit, offset=offset
            )
        )
        return {"jobs": items}

    @router.get("/v1/retrain-jobs/{job_id}")
    async def get_job(job_id: int) -> dict[str, Any]:
        """One job with its log."""
        return await run_in_threadpool(queries.get_job, store, job_id)
