"""The fast routes (``server/fastroute.py``) spare FastAPI's route resolution, and fail loudly
when FastAPI no longer keeps an included router's routes where they look.

Counted in process: how often a request asks an included router whether it matches (each
ask walks that router's routes through FastAPI's per-inclusion route contexts). The hot
routes are answered without one; with the fast paths off, each request asks several.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from watchkeeper.server.app import create_app
from watchkeeper.server.fastroute import FastRoutes, documented_routes
from watchkeeper.settings import load_settings

with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

HOT = [
    ("/v1/models/m/predictions", {"events": []}),
    ("/v1/models/m/actuals", {"actuals": []}),
    ("/v1/cloudevents?model=m", {"x": 1}),
    ("/v1/models/m/predict", {"rows": [{"x": 1}]}),
    ("/v2/models/m/infer", {"inputs": []}),
    ("/v2/models/m/versions/v1/infer", {"inputs": []}),
]


def _client(tmp_path: Path, *, fast: bool) -> Iterator[tuple[TestClient, list[int]]]:
    """A client of the app (no lifespan: nothing runs behind it) and the count of included
    routers asked whether a request matches."""
    settings = load_settings(
        environ={}, data_dir=str(tmp_path), inference_fast_path=fast, ingest_fast_path=fast
    )
    app = create_app(settings)
    asked = [0]
    for route in app.router.routes:
        if getattr(route, "original_router", None) is None:
            continue

        def counted(scope: Any, matches: Any = route.matches) -> Any:
            asked[0] += 1
            return matches(scope)

        route.matches = counted  # type: ignore[method-assign]
    yield TestClient(app, base_url="http://127.0.0.1"), asked


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[tuple[TestClient, list[int]]]:
    yield from _client(tmp_path, fast=True)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[TestClient, list[int]]]:
    yield from _client(tmp_path, fast=False)


@pytest.mark.parametrize(("path", "body"), HOT)
def test_a_hot_route_asks_no_included_router(
    fast: tuple[TestClient, list[int]], slow: tuple[TestClient, list[int]], path: str, body: Any
) -> None:
    (client, asked), (slow_client, slow_asked) = fast, slow
    r = client.post(path, json=body)
    expected = slow_client.post(path, json=body)
    assert (r.status_code, r.content) == (expected.status_code, expected.content)
    assert r.status_code in (400, 404), r.text  # model m is not registered; no ce-id
    assert asked[0] == 0
    assert slow_asked[0] >= 4  # the routers included before the route's own


def test_other_routes_still_go_through_the_router(fast: tuple[TestClient, list[int]]) -> None:
    client, asked = fast
    assert client.get("/v1/models/m/predictions").status_code == 405
    assert client.get("/v1/models").status_code == 200
    assert asked[0] > 0


def test_the_documented_routes_are_found_where_fastapi_keeps_them() -> None:
    """Fails if FastAPI stops keeping an included router's routes in ``original_router``."""
    inner = APIRouter()

    @inner.post("/items/{item}")
    async def put_item(item: str) -> dict[str, str]:
        return {"item": item}

    app = FastAPI()
    app.include_router(inner)
    found = documented_routes(app.router.routes, ["put_item"])
    assert getattr(found["put_item"], "path", None) == "/items/{item}"
    with pytest.raises(RuntimeError, match=r"\['nothing'\]"):
        documented_routes(app.router.routes, ["nothing"])


def test_a_route_without_the_nul_check_is_refused() -> None:
    """The fast route makes the checks of a route with ``NO_NUL``; another is not answered."""
    inner = APIRouter()

    @inner.post("/items/{item}")
    async def put_item(item: str) -> dict[str, str]:
        return {"item": item}

    app = FastAPI()
    app.include_router(inner)

    async def handler(request: Any, params: Any) -> Any:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="does not check NULs"):
        FastRoutes(app.router.routes, {"put_item": handler})
