"""The OpenAPI document: request bodies the routes parse by hand, the one error shape.

A route whose body is read by hand documents it with :func:`request_body`; the models it
names are hoisted into ``components/schemas`` by :func:`install_openapi`, which also drops
FastAPI's default 422 (a schema the app never returns): a route that can answer 422 lists it
with :func:`~watchkeeper.server.errors.errors` and the real error body. Every operation but
``/healthz`` may answer 503 with ``Retry-After`` (the database or its disk unavailable,
``store.faults``): the document says so for each. Every operation with a request body lists
415 (``server/bodies.py`` refuses the content types it does not document).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from watchkeeper.server.errors import errors, oip_path

REF = "#/components/schemas/{model}"
BINARY = {"type": "string", "format": "binary"}
_HOIST = "x-watchkeeper-schemas"
UNSUPPORTED_TYPE = {
    "description": "The body's content type is not one this route reads: the message names them",
    "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
}


def request_body(
    description: str, content: dict[str, type[BaseModel] | list[type[BaseModel]] | None]
) -> dict[str, Any]:
    """``openapi_extra`` of a route: per content type a model, a choice of models (``oneOf``)
    or ``None`` for a binary body (Arrow, Parquet, CSV)."""
    schemas: dict[str, Any] = {}
    media: dict[str, Any] = {}
    for content_type, models in content.items():
        if models is None:
            media[content_type] = {"schema": BINARY}
            continue
        choice = models if isinstance(models, list) else [models]
        refs = []
        for model in choice:
            schema = model.model_json_schema(ref_template=REF)
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            refs.append({"$ref": REF.format(model=model.__name__)})
        media[content_type] = {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}
    body = {"required": True, "description": description, "content": media}
    return {"requestBody": body, _HOIST: schemas}


def _unavailable(path: str) -> dict[str, Any]:
    response = errors(503)[503]
    body = "OipErrorBody" if oip_path(path) else "ErrorBody"
    return {
        "description": response["description"],
        "headers": response["headers"],
        "content": {"application/json": {"schema": {"$ref": REF.format(model=body)}}},
    }


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that builds the document described above, once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                schemas.update(operation.pop(_HOIST, {}))
                responses = operation.get("responses", {})
                if "requestBody" in operation:  # server/bodies.py: other content types get 415
                    responses.setdefault("415", UNSUPPORTED_TYPE)
                if "HTTPValidationError" in str(responses.get("422")):
                    del responses["422"]  # added by FastAPI; a route that can 422 says so
        for path, item in doc.get("paths", {}).items():
            for operation in item.values():
                if path != "/healthz":  # alive: it reads nothing
                    operation["responses"].setdefault("503", _unavailable(path))
        for unused in ("HTTPValidationError", "ValidationError"):
            if unused not in str(doc["paths"]):
                schemas.pop(unused, None)
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "a token (wk_...) with the route's scope; required when tokens "
                "are on (by default, when the server binds beyond loopback)",
            }
        }
        doc["security"] = [{"bearer": []}, {}]  # tokens may be off (a loopback server)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
