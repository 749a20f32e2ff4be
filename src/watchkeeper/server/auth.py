"""Bearer-token authentication with scopes: ingest (send events and labels), read (query),
admin (every change, and reading the audit trail). Required whenever tokens are on (by
default, when the server binds to a non-loopback address); ``/healthz`` and ``/readyz`` are
always open. A request's changes are recorded in the audit trail under the token's name.

A client whose tokens failed too often is refused (429) before its token is checked
(:mod:`watchkeeper.server.ratelimit`, shared with the dashboard's login)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from watchkeeper.server.dashboard.session import is_dashboard_path
from watchkeeper.server.errors import database_fault, error_body, error_response
from watchkeeper.server.ratelimit import FailureLimiter, TooManyFailures, client_address
from watchkeeper.store.audit import ACTOR
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import identify_token

OPEN_PATHS = (
    "/healthz",
    "/readyz",
    "/v2/health/live",
    "/v2/health/ready",
    "/docs",
    "/redoc",
    "/openapi.json",
)
OPEN_PREFIX = "/docs/static/"  # Swagger UI's and ReDoc's files (server/apidocs.py)


def required_scope(method: str, path: str) -> str:
    if path == "/v1/audit" or path.startswith("/v1/audit/"):
        return "admin"  # who changed what: for administrators only
    if method == "POST" and (
        path.endswith(("/predictions", "/actuals", "/predict", "/infer"))
        or path == "/v1/cloudevents"
    ):
        return "ingest"
    if method in ("GET", "HEAD") or (method == "POST" and path.endswith("/explain")):
        return "read"  # /explain scores rows and logs nothing
    return "admin"


def auth_middleware(
    store: Store, limiter: FailureLimiter
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        # the dashboard checks its cookie
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIX) or is_dashboard_path(path):
            return await call_next(request)
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return JSONResponse(
                error_body(
                    401,
                    "Unauthorized",
                    "a bearer token is required: Authorization: Bearer wk_...",
                    path=path,
                ),
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        client = client_address(request)
        try:
            limiter.check(client)
        except TooManyFailures as exc:
            return error_response(exc, path)
        try:
            found = await run_in_threadpool(identify_token, store, header[7:].strip())
        except Exception as exc:  # a middleware's errors bypass the app's error handlers
            fault = database_fault(exc, path)
            if fault is None:
                raise
            return fault
        if found is None:
            limiter.fail(client)
            return JSONResponse(
                error_body(401, "Unauthorized", "the token is not valid", path=path),
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        name, scopes = found
        need = required_scope(request.method, path)
        if need not in scopes and "admin" not in scopes:
            return JSONResponse(
                error_body(
                    403,
                    "Forbidden",
                    f"this token lacks the {need!r} scope (it has {scopes})",
                    path=path,
                ),
                403,
            )
        acting = ACTOR.set(name)  # this request's changes are the token's (store/audit.py)
        try:
            return await call_next(request)
        finally:
            ACTOR.reset(acting)

    return middleware
