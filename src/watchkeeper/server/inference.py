"""The inference routes' fast path: ``POST /v1/models/{model}/predict`` and ``POST
/v2/models/{model}[/versions/{version}]/infer`` answered without FastAPI's machinery.

For a one-row request that machinery cost more than the model (issue 11): the routes were
found by trying some 90 path patterns in turn, FastAPI solved their dependencies (the body's
content type, the NUL check, the app's state) and validated the answer against its response
model before serialising it. :class:`InferenceRoute` stands first in the router: one
precompiled pattern recognises the three paths, and it makes the same checks in the same
order, each by the function the documented routes use:

1. the content type (:func:`~watchkeeper.server.bodies.check_body_type`, with the types the
   documented route lists: 415);
2. no NUL in a path parameter or ``version`` (:func:`~watchkeeper.server.params.reject_nul`);
3. the body and the answer: :func:`~watchkeeper.server.serving_api.predicted` and
   :func:`~watchkeeper.server.serving_api.inferred` (the size limit, JSON, scoring in the
   thread pool);
4. the answer serialised by orjson in the response model's field order: the bytes pydantic
   writes for it (an answer orjson cannot write goes through the response model).

It is a route, so everything around the router applies as before: the browser guard, the
token check with its scopes, the error handlers (one error body, ``Retry-After`` on 503).
The documented routes stay for the OpenAPI document (and answer when the fast path is off:
``inference_fast_path = false``); the tests compare both answers.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from watchkeeper.server.bodies import UNTYPED, accepted_types, check_body_type
from watchkeeper.server.params import reject_nul
from watchkeeper.server.schemas.serving import InferResponse, Predicted
from watchkeeper.server.serving_api import inferred, predicted

PATHS = re.compile(
    r"^/v(?:1/models/(?P<v1>[^/]+)/predict"
    r"|2/models/(?P<v2>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer)$"
)  # the documented routes' patterns ({name} is [^/]+), in one
SCALARS = frozenset({str, float, int, bool, type(None)})  # Predicted.predictions' types
ENDPOINTS = ("predict", "v2_infer", "v2_infer_version")  # the documented routes' names
KEY = "watchkeeper.inference"  # the scope's entry: which of them


class InferenceRoute(BaseRoute):
    """Matches a POST to one of the inference paths (anything else: the next routes)."""

    path = "/v1/models/{model}/predict"  # one of them, for the route lists; see PATHS

    def __init__(self, routes: list[BaseRoute]) -> None:
        by_name = {getattr(r, "name", None): r for r in _flat(routes)}
        self.documented = [by_name[name] for name in ENDPOINTS]
        self.accepted = [accepted_types(r) for r in self.documented]
        self.untyped = [
            bool((getattr(r, "openapi_extra", None) or {}).get(UNTYPED)) for r in self.documented
        ]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "POST":
            return Match.NONE, {}
        found = PATHS.match(_route_path(scope))
        if found is None:
            return Match.NONE, {}
        v1, v2, version = found.group("v1", "v2", "version")
        which = 0 if v1 is not None else 1 if version is None else 2
        params = {"model": v1 or v2} if version is None else {"model": v2, "version": version}
        route = self.documented[which]
        child = {
            "endpoint": getattr(route, "endpoint", None),
            "path_params": {**scope.get("path_params", {}), **params},
            "route": route,
            KEY: which,
        }
        return Match.FULL, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        which: int = scope[KEY]
        request = Request(scope, receive)
        check_body_type(
            request.headers.get("content-type"), self.accepted[which], untyped=self.untyped[which]
        )
        params = scope["path_params"]
        version = request.query_params.get("version") if which == 0 else params.get("version")
        reject_nul(params, request.query_params, ("version",) if which == 0 else ())
        served = request.app.state.served
        if which == 0:
            content = await predicted(request, served, params["model"], version)
            plain = all(type(p) in SCALARS for p in content["predictions"])
            body = _dumped(content, Predicted, plain=plain)
        else:
            answer = await inferred(request, served, params["model"], version)
            if isinstance(answer, Response):  # the binary extension's
                await answer(scope, receive, send)
                return
            body = _dumped(_in_model_order(answer), InferResponse, plain=True)
        await Response(body, media_type="application/json")(scope, receive, send)


def _dumped(content: dict[str, Any], model: type[BaseModel], *, plain: bool) -> bytes:
    """``content`` as the documented route writes it: orjson writes what pydantic would
    (compact, UTF-8, a NaN or infinity as null, the same float digits) for a ``plain``
    answer; any other, or one orjson cannot write (an integer past 64 bits, a lone
    surrogate), goes through the response model, which writes it or refuses it (a 500) as
    the documented route does."""
    if plain:
        try:
            return orjson.dumps(content)
        except TypeError:
            pass
    return model.model_validate(content).model_dump_json(by_alias=True).encode()


def _in_model_order(result: dict[str, Any]) -> dict[str, Any]:
    """An inference response in :class:`InferResponse`'s order, ``id`` null when absent."""
    ordered = {
        "model_name": result["model_name"],
        "model_version": result["model_version"],
        "id": result.get("id"),
        "parameters": result["parameters"],
        "outputs": result["outputs"],
    }
    return ordered | result


def _route_path(scope: Scope) -> str:
    """The path under the app's ``root_path``, as Starlette's routes match it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path != root and path[len(root)] == "/":
        return path[len(root) :]
    return "" if root and path == root else path


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes, those of included routers in their place."""
    out: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out.extend(_flat(included.routes) if included is not None else [route])
    return out
