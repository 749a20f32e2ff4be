"""The API's one JSON error shape: built by :func:`error_body`, documented by :class:`ErrorBody`.

Every error the API returns — a :class:`WatchkeeperError` (its ``http_status``), an HTTP error
of the framework (404 for an unknown path, 405), a request that fails validation (422), the
token middleware's 401, 403 and 429 and the browser guard's 400 and 403 — has the body
``{"error": {"status", "type", "message"}}``, except under ``/v2`` (the Open Inference
Protocol), whose clients (KServe's, Triton's) read ``{"error": "<message>"}`` as the protocol
says: :class:`OipErrorBody`.
Routes list the statuses they return with :func:`errors`, so the OpenAPI document says so.

A fault of the database or of the data directory's disk (``store.faults.transient``: the
database unreachable, its connection terminated, SQLite locked past its busy timeout, a disk
full) is answered 503 ``StoreUnavailable`` with ``Retry-After``, on every route
(:func:`database_fault`); any other exception stays a 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from watchkeeper.errors import WatchkeeperError
from watchkeeper.store.faults import unavailable

log = logging.getLogger("watchkeeper.server")

STATUS_MEANINGS = {
    400: "The request cannot be used: the message names the parameter, field or value",
    401: "A bearer token is required, or the token is not valid",
    403: "The token lacks the scope of this route",
    404: "The model, version or other named object does not exist",
    409: "A conflict: the object exists already, or belongs to the settings file",
    413: "The body or the batch is over the limit",
    415: "The body's content type is not one this route reads: the message names them",
    422: "A parameter has the wrong type or range, or every event of a batch was rejected",
    429: "Too many failed token checks from this client: retry after the Retry-After seconds",
    500: "The model failed to load or to score: the message names the model and the error",
    501: "A runtime of an optional extra is not installed: the message names the extra",
    503: "The service cannot take the request now (the database or its disk is unavailable, "
    "or too many events wait to be processed): retry after the Retry-After seconds",
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: int = Field(description="the HTTP status, as in the response line")
    type: str = Field(description="the error's kind, e.g. NotFoundError, InputError")
    message: str = Field(description="what went wrong, naming the parameter or value")


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: ErrorDetail


class OipErrorBody(BaseModel):
    """An error of the Open Inference Protocol's routes (``/v2``)."""

    error: str = Field(description="what went wrong, naming the tensor, parameter or value")


def oip_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_body(
    status: int, kind: str, message: str, *, path: str = "", **extra: Any
) -> dict[str, Any]:
    """The one JSON error shape of the API (the protocol's under ``/v2``: see the module)."""
    if oip_path(path):
        return {"error": message}
    return {"error": {"status": status, "type": kind, "message": message, **extra}}


def errors(*statuses: int, oip: bool = False) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses, each with :class:`ErrorBody`
    (``oip``: :class:`OipErrorBody`)."""
    out: dict[int | str, dict[str, Any]] = {}
    if 401 in statuses:  # a client whose tokens failed too often gets 429 (server/ratelimit.py)
        statuses = tuple(sorted({*statuses, 429}))
    for status in statuses:
        body = OipErrorBody if oip else ErrorBody
        out[status] = {"model": body, "description": STATUS_MEANINGS[status]}
        if status in (429, 503):
            out[status]["headers"] = {
                "Retry-After": {"description": "seconds", "schema": {"type": "integer"}}
            }
        if status == 401:
            out[status]["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
    return out


def error_response(exc: WatchkeeperError, path: str = "") -> JSONResponse:
    status = exc.http_status
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = error_body(status, type(exc).__name__, str(exc), path=path)
    return JSONResponse(body, status, headers=headers)


def database_fault(exc: BaseException, path: str = "") -> JSONResponse | None:
    """The 503 answer to a fault of the database or the disk (logged), or None when ``exc``
    is something else."""
    error = unavailable(exc)
    if error is None:
        return None
    log.warning("answered 503: %s", error)
    return error_response(error, path)


async def _fault(request: Request, exc: Exception) -> JSONResponse:
    response = database_fault(exc, request.url.path)
    if response is None:
        raise exc  # not the surroundings': a 500, logged by the server
    return response


async def _watchkeeper(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WatchkeeperError)
    return error_response(exc, request.url.path)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTPStatus(exc.status_code).phrase.replace(" ", "").replace("-", "")
    body = error_body(exc.status_code, kind, str(exc.detail), path=request.url.path)
    return JSONResponse(body, exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return JSONResponse(error_body(422, "ValidationError", problems, path=request.url.path), 422)


def add_error_handlers(app: FastAPI) -> None:
    """Every error becomes :func:`error_body`."""
    app.add_exception_handler(WatchkeeperError, _watchkeeper)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(sa.exc.SQLAlchemyError, _fault)
    app.add_exception_handler(OSError, _fault)
