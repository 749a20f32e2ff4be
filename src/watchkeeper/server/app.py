"""``create_app(settings)``: the FastAPI application. Nothing happens at import time."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from watchkeeper import __version__
from watchkeeper.alerts.config import alert_config
from watchkeeper.alerts.service import Alerting
from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.evaluation.evaluate import Evaluator, latest, series
from watchkeeper.evaluation.retention import sweep
from watchkeeper.ingest.events import PayloadTooLarge
from watchkeeper.ingest.processor import Processor, ProcessorProcess
from watchkeeper.ingest.service import IngestService, Overloaded
from watchkeeper.server.alerts_api import add_alert_routes
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store

TABLE_TYPES = {
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/vnd.apache.arrow.stream": ".arrows",
    "application/vnd.apache.arrow.file": ".arrow",
    "text/csv": ".csv",
}


def error_body(status: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one JSON error shape of the API."""
    return {"error": {"status": status, "type": kind, "message": message, **extra}}


def _error_response(exc: WatchkeeperError) -> JSONResponse:
    status = exc.http_status
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
    return JSONResponse(error_body(status, type(exc).__name__, str(exc)), status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes; the limit is {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _table_from_upload(body: bytes, content_type: str | None) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from pyarrow import ipc

    kind = (content_type or "").split(";")[0].strip().lower()
    suffix = TABLE_TYPES.get(kind)
    try:
        if suffix == ".parquet":
            return pq.read_table(io.BytesIO(body))
        if suffix == ".csv":
            return pcsv.read_csv(io.BytesIO(body))
        if suffix == ".arrows":
            return ipc.open_stream(pa.BufferReader(body)).read_all()
        if suffix == ".arrow":
            return ipc.open_file(pa.BufferReader(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"reference body is not valid {suffix}: {exc}") from None
    raise InputError(
        f"reference upload: unsupported content type {kind!r}; use one of {sorted(TABLE_TYPES)}"
    )


def create_app(settings: Settings) -> FastAPI:
    alert_settings = alert_config(settings)  # a bad monitor or notifier fails before anything
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.sqlalchemy_url)
    service = IngestService(store, settings)
    processor: Processor | ProcessorProcess = (
        ProcessorProcess(settings)
        if settings.processor == "process"
        else Processor(store, settings)
    )
    evaluator = Evaluator(store)
    alerting = Alerting(store, settings, alert_settings)
    evaluator.after_pass.append(alerting.engine.run_once)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        processor.start()
        alerting.start()
        evaluator.start(
            settings.evaluation_interval_seconds,
            maintenance=lambda: sweep(store, settings.lake_dir),
        )
        try:
            yield
        finally:
            evaluator.stop()
            alerting.stop()
            processor.stop()
            store.close()

    app = FastAPI(title="watchkeeper", version=__version__, lifespan=lifespan)
    app.state.settings, app.state.store, app.state.service = settings, store, service
    app.state.processor, app.state.evaluator = processor, evaluator
    app.state.alerting = alerting
    add_alert_routes(app, store, alerting.catalog, public_url=settings.public_url)

    if settings.tokens_required:
        from watchkeeper.server.auth import auth_middleware

        app.middleware("http")(auth_middleware(store, error_body))

    @app.exception_handler(WatchkeeperError)
    async def _handle(_request: Request, exc: WatchkeeperError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = HTTPStatus(exc.status_code).phrase.replace(" ", "").replace("-", "")
        return JSONResponse(error_body(exc.status_code, kind, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return JSONResponse(error_body(422, "ValidationError", problems), 422)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"models": [m.name for m in await run_in_threadpool(store.models)]}

    @app.put("/v1/models/{model}/versions/{version}", status_code=201)
    async def register(request: Request, model: str, version: str) -> dict[str, Any]:
        """Register a model version; the body is its training reference (Parquet, CSV, Arrow)."""
        body = await _body(request, settings.max_body_bytes)
        q = request.query_params
        table = _table_from_upload(body, request.headers.get("content-type"))

        def split(name: str) -> list[str] | None:
            value = q.get(name)
            return [v for v in value.split(",") if v] if value else None

        window = q.get("window_seconds")
        return await run_in_threadpool(
            service.register,
            model,
            table,
            version=version,
            target=q.get("target"),
            prediction=q.get("prediction"),
            scores=split("scores"),
            segments=split("segments"),
            window_seconds=int(window) if window and window.isdigit() else None,
            champion=q.get("champion", "true").lower() != "false",
            drift_reference=q.get("drift_reference"),
        )

    @app.get("/v1/models/{model}")
    async def model_status(model: str) -> dict[str, Any]:
        status = await run_in_threadpool(service.status, model)
        status["latest_window"] = await run_in_threadpool(latest, store, model)
        return status

    @app.get("/v1/models/{model}/metrics")
    async def model_series(
        model: str,
        metric: str,
        feature: str = "",
        version: str | None = None,
        segment: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, Any]:
        """A metric's time series: one point per evaluated window."""
        await run_in_threadpool(store.model, model)
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
        return {"model": model, "metric": metric, "feature": feature, "points": points}

    @app.post("/v1/models/{model}/predictions")
    async def predictions(request: Request, model: str) -> JSONResponse:
        body = await _body(request, settings.max_body_bytes)
        result = await run_in_threadpool(
            service.ingest, model, body, request.headers.get("content-type")
        )
        everything_rejected = result.rejected and not result.accepted and not result.duplicates
        return JSONResponse(result.to_dict(), 422 if everything_rejected else 200)

    @app.post("/v1/models/{model}/actuals")
    async def actuals(request: Request, model: str) -> dict[str, Any]:
        body = await _body(request, settings.max_body_bytes)
        return await run_in_threadpool(service.actuals, model, body)

    @app.post("/v1/cloudevents")
    async def cloudevents(
        request: Request, model: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """A KServe / Seldon request-logger target: request and response joined by event id."""
        body = await _body(request, settings.max_body_bytes)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await run_in_threadpool(service.cloudevent, headers, body, model, version)

    @app.get("/v1/models/{model}/quarantine")
    async def quarantine(model: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        await run_in_threadpool(store.model, model)
        rows = await run_in_threadpool(
            store.quarantine, model, limit=min(limit, 10_000), offset=offset
        )
        return {"model": model, "items": rows}

    @app.get("/metrics")
    async def metrics() -> Response:
        from watchkeeper.server.metrics import render_metrics

        body, content_type = await run_in_threadpool(render_metrics, store, processor)
        return Response(body, media_type=content_type)

    from watchkeeper.server.dashboard import add_dashboard_routes

    add_dashboard_routes(app)  # the web dashboard: / and /ui/ (docs/dashboard.md)
    return app
