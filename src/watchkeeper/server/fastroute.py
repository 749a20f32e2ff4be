"""Hot routes answered ahead of FastAPI's router, with the documented routes' checks.

For each request FastAPI 0.165 tries the routes of every included router in turn, through its
per-inclusion route contexts, and solves the route's dependencies: on the ingest and inference
paths this cost more than the work (issues 11 and 12). :class:`FastRoutes` stands first in
the app's routes and answers the documented routes named to it, each by a handler of the
module that owns it (``server/inference.py``, ``server/ingest_api.py``). It makes the checks
the documented routes' dependencies make, in their order, by the same functions:

1. the content type (:func:`~watchkeeper.server.bodies.check_body_type`, with the types the
   documented route lists: 415);
2. no NUL in a path parameter or a query parameter the route declares
   (:func:`~watchkeeper.server.params.reject_nul`: 400);
3. the handler: the body (size limit, parsing) and the answer.

It matches by the documented route's own pattern and method (a path of another method, or
another path, goes on to the router: the same 405, 404 or redirect). It is a route, so
everything around the router applies as before: the browser guard, the token check with its
scopes, the error handlers (one error body, ``Retry-After`` on 503). The documented routes
stay for the OpenAPI document and answer when the fast path is off; the tests compare both.

:func:`documented_routes` is the one place that relies on FastAPI's internals: how an
included router keeps its routes (``original_router``); a FastAPI that changes it fails in
``create_app`` (and in ``tests/server/test_fast_routes.py``), naming the route not found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from watchkeeper.server.bodies import UNTYPED, accepted_types, check_body_type
from watchkeeper.server.params import NO_NUL, reject_nul

# a handler: the request and its path parameters → the answer (sent as it is)
Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]
KEY = "watchkeeper.fast_route"  # the scope's entry: which of the routes matched


@dataclass(frozen=True)
class _Entry:
    route: BaseRoute  # the documented route
    handler: Handler
    methods: frozenset[str]
    pattern: Any  # its compiled path pattern
    convertors: Mapping[str, Any]
    accepted: list[str]  # its body's content types
    untyped: bool  # it also reads a body with no content type
    declared: frozenset[str]  # its query parameters (checked for NULs)


class FastRoutes(BaseRoute):
    """Answers a request of one of ``handlers``' documented routes (named as in the app:
    the endpoint's function name); anything else: the next routes."""

    def __init__(self, routes: list[BaseRoute], handlers: Mapping[str, Handler]) -> None:
        found = documented_routes(routes, list(handlers))
        self.entries = [_entry(found[name], handler) for name, handler in handlers.items()]
        self.names = list(handlers)
        self.path = getattr(self.entries[0].route, "path", "") if self.entries else ""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        method, path = scope["method"], _route_path(scope)
        for index, entry in enumerate(self.entries):
            if method not in entry.methods:
                continue
            found = entry.pattern.match(path)
            if found is None:
                continue
            params = {k: entry.convertors[k].convert(v) for k, v in found.groupdict().items()}
            child = {
                "endpoint": getattr(entry.route, "endpoint", None),
                "path_params": {**scope.get("path_params", {}), **params},
                "route": entry.route,
                KEY: index,
            }
            return Match.FULL, child
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.entries[scope[KEY]]
        request = Request(scope, receive)
        check_body_type(request.headers.get("content-type"), entry.accepted, untyped=entry.untyped)
        params: dict[str, Any] = scope["path_params"]
        reject_nul(params, request.query_params, entry.declared)
        response = await entry.handler(request, params)
        await response(scope, receive, send)


def dumped(content: Any, model: type[BaseModel], *, plain: bool) -> bytes:
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


def _entry(route: BaseRoute, handler: Handler) -> _Entry:
    dependencies = getattr(route, "dependencies", [])
    if NO_NUL not in dependencies:  # the checks below are those of a route with NO_NUL
        raise RuntimeError(f"route {getattr(route, 'name', route)!r} does not check NULs")
    dependant = getattr(route, "dependant", None)
    return _Entry(
        route=route,
        handler=handler,
        methods=frozenset(getattr(route, "methods", None) or ()),
        pattern=getattr(route, "path_regex"),  # noqa: B009 (a Starlette route's attribute)
        convertors=getattr(route, "param_convertors", {}),
        accepted=accepted_types(route),
        untyped=bool((getattr(route, "openapi_extra", None) or {}).get(UNTYPED)),
        declared=frozenset(p.alias for p in getattr(dependant, "query_params", [])),
    )


def documented_routes(routes: list[BaseRoute], names: list[str]) -> dict[str, BaseRoute]:
    """The routes named ``names`` among ``routes`` and those of the routers they include
    (FastAPI keeps an included router as a route holding it: ``original_router``).
    A :class:`RuntimeError` names one not found."""
    by_name: dict[str, BaseRoute] = {}
    for route in _flat(routes):
        by_name.setdefault(getattr(route, "name", None) or "", route)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise RuntimeError(
            f"the fast routes' documented routes {missing} are not among the app's routes "
            "(has FastAPI changed how it keeps an included router's routes?)"
        )
    return {name: by_name[name] for name in names}


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes, those of included routers in their place."""
    out: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out.extend(_flat(included.routes) if included is not None else [route])
    return out


def _route_path(scope: Scope) -> str:
    """The path under the app's ``root_path``, as Starlette's routes match it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path != root and path[len(root)] == "/":
        return path[len(root) :]
    return "" if root and path == root else path
