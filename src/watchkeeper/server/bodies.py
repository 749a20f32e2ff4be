"""Request bodies read by hand: their content type checked, a size limit while streaming,
reference tables by content type."""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
from fastapi import Depends, Request

from watchkeeper.errors import InputError
from watchkeeper.ingest.events import PayloadTooLarge

TABLE_TYPES = {
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/vnd.apache.arrow.stream": ".arrows",
    "application/vnd.apache.arrow.file": ".arrow",
    "text/csv": ".csv",
}


UNTYPED = "x-untyped-body"  # openapi_extra of a route that also reads a body with no type


class UnsupportedMediaType(InputError):
    """A body whose content type the route does not read."""

    http_status = 415


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without its parameters.

    >>> media_type("Application/JSON; charset=utf-8"), media_type(None)
    ('application/json', '')
    """
    return (content_type or "").split(";")[0].strip().lower()


def accepted_types(route: object) -> list[str]:
    """The content types a route documents for its body (``openapi_extra``, see
    :func:`watchkeeper.server.openapi.request_body`): the check and the OpenAPI document
    read the same list."""
    extra = getattr(route, "openapi_extra", None) or {}
    return list(extra.get("requestBody", {}).get("content", {}))


async def _check_body_type(request: Request) -> None:
    """A route with a documented body takes only its content types: a JSON route JSON, which
    a page of another site cannot send without the browser asking first (CORS preflight),
    unlike ``text/plain`` or a form. 415 naming the type received and the accepted ones."""
    route = request.scope.get("route")
    untyped = bool((getattr(route, "openapi_extra", None) or {}).get(UNTYPED))
    check_body_type(request.headers.get("content-type"), accepted_types(route), untyped=untyped)


def check_body_type(content_type: str | None, accepted: list[str], *, untyped: bool) -> None:
    """:class:`UnsupportedMediaType` unless ``content_type`` is one of ``accepted`` (or
    absent, when the route reads an ``untyped`` body too); no list accepts anything."""
    if not accepted:
        return
    received = media_type(content_type)
    if not received and untyped:
        return  # a client of a protocol that sends none (Triton's); the Origin check stays
    if received not in accepted:
        shown = f"content type {received!r}" if received else "no content type"
        raise UnsupportedMediaType(
            f"body with {shown}: this route reads {', '.join(accepted)} "
            "(set the Content-Type header)"
        )


BODY_TYPE = Depends(_check_body_type)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or :class:`PayloadTooLarge` (413) once it passes ``limit`` bytes."""
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


def table_from_upload(body: bytes, content_type: str | None) -> Any:
    """A reference upload as an Arrow table (Parquet, CSV, Arrow IPC stream or file)."""
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


async def read_json(request: Request, limit: int | None = None) -> Any:
    """The body as JSON (at most ``limit`` bytes, else 413), or an :class:`InputError` saying
    why not."""
    body = await (request.body() if limit is None else read_body(request, limit))
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    """``json.loads`` of a request body, by orjson when it can (the strict JSON it reads is
    parsed alike, several times faster); what orjson refuses, ``json`` reads or names, as
    before (``NaN``, integers past 64 bits, the error's message). A NUL is refused."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"body is not valid JSON: {exc}") from None
    if b"\\u0000" in body.lower():  # the store's text cannot hold it
        raise InputError("body: a text contains a NUL character (\\u0000)")
    return data
