"""The ingest routes' fast path (``server/fastroute.py``) answers as the documented routes do.

Two real servers, one with ``ingest_fast_path`` off, each with tokens on and the same model,
get the same requests in the same order: good ones (row JSON, a bare list, columnar JSON,
Arrow IPC, Parquet, labels, CloudEvents in binary and structured mode) and bad ones (each
check: token, scope, Host, Origin, content type, size, JSON, NUL in the path or a query
parameter, an unknown model, every event rejected, a method or a path of another route).
Status, the headers a client reads and the body's bytes must be equal.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.service.fixtures import Server, ServerFactory, events_table, make_events, reference_table
from watchkeeper.ingest.events import to_ipc
from watchkeeper.server.app import create_app
from watchkeeper.server.fastroute import FastRoutes
from watchkeeper.settings import Settings, load_settings
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

LIMIT = 16_384  # max_body_bytes: the reference fits, the big body does not
MODEL = "fast-ingest"
HEADERS = ("content-type", "retry-after", "www-authenticate", "allow", "location")
JSON = {"content-type": "application/json"}
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}
PARQUET = {"content-type": "application/vnd.apache.parquet"}


def _token(server: Server, scopes: list[str]) -> str:
    store = Store(Settings(database_url=server.database_url).sqlalchemy_url)
    try:
        return create_token(store, "-".join(scopes), scopes)
    finally:
        store.close()


@pytest.fixture(scope="module")
def servers(
    module_server: ServerFactory, module_databases: Callable[[], str]
) -> Iterator[list[tuple[Server, dict[str, str]]]]:
    """The fast path on, then off; each with its tokens: ingest, read, admin."""
    out = []
    buf = io.BytesIO()
    pq.write_table(reference_table(), buf)
    for fast in ("true", "false"):
        env = {
            "WATCHKEEPER_REQUIRE_TOKENS": "true",
            "WATCHKEEPER_MAX_BODY_BYTES": str(LIMIT),
            "WATCHKEEPER_INGEST_FAST_PATH": fast,
        }
        server = module_server(module_databases(), env=env)
        tokens = {s: _token(server, [s]) for s in ("ingest", "read", "admin")}
        with server.client() as client:
            client.headers["authorization"] = f"Bearer {tokens['admin']}"
            r = client.put(
                f"/v1/models/{MODEL}/versions/v1",
                params={"prediction": "pred", "segments": "region"},
                content=buf.getvalue(),
                headers=PARQUET,
            )
            assert r.status_code == 201, r.text
        out.append((server, tokens))
    yield out


def _columnar(ids: list[str]) -> dict[str, Any]:
    events = make_events(ids)
    columns: dict[str, Any] = {k: [e[k] for e in events] for k in events[0] if k != "features"}
    columns["features"] = {k: [e["features"][k] for e in events] for k in events[0]["features"]}
    return columns


def _parquet(ids: list[str]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(events_table(ids), buf)
    return buf.getvalue()


def _cloudevent(kind: str, event_id: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "http://localhost:9081/v1/models/fast:predict",
        "ce-time": "2026-12-04T10:00:00.000Z",
    }


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments) of each case; ``token``: which (default ingest) or
    none; ``status``: the one expected."""
    path = f"/v1/models/{MODEL}/predictions"
    labels = f"/v1/models/{MODEL}/actuals"
    bad = [{**make_events(["bad-1"])[0], "features": {"age": "old"}}]
    structured = {
        "specversion": "1.0",
        "id": "s-1",
        "type": "org.kubeflow.serving.inference.request",
        "source": "x",
        "datacontenttype": "application/json",
        "data": {"instances": [[1.0, 2.0]]},
    }
    return [
        ("POST", path, {"json": {"events": make_events(["r-1", "r-2"])}, "status": 200}),
        ("POST", path, {"json": make_events(["r-3"])}),  # a bare list
        ("POST", path, {"json": {"events": make_events(["r-1"])}}),  # a duplicate
        ("POST", path, {"json": _columnar(["c-1", "c-2"])}),
        ("POST", path, {"content": to_ipc(events_table(["a-1", "a-2"])), "headers": ARROW}),
        ("POST", path, {"content": _parquet(["p-1"]), "headers": PARQUET}),
        ("POST", path, {"json": {"events": bad}, "status": 422}),
        ("POST", path, {"json": {"events": make_events(["t-1"])}, "token": None}),
        ("POST", path, {"json": {"events": make_events(["t-2"])}, "token": "read"}),
        ("POST", path, {"json": {"events": []}, "headers": {"host": "evil.test"}}),
        ("POST", path, {"json": {"events": []}, "headers": {"origin": "http://evil.test"}}),
        ("POST", path, {"content": b'{"events": []}', "headers": {"content-type": "text/plain"}}),
        ("POST", path, {"content": b'{"events": []}'}),
        ("POST", path, {"content": b'{"events": [', "headers": JSON}),
        ("POST", path, {"content": b"\x00\x01", "headers": ARROW}),
        ("POST", path, {"content": b" " * (LIMIT + 1), "headers": JSON, "status": 413}),
        ("POST", "/v1/models/fast%00i/predictions", {"json": {"events": []}, "status": 400}),
        ("POST", "/v1/models/nobody/predictions", {"json": {"events": []}, "status": 404}),
        ("GET", path, {"token": "admin"}),
        ("POST", path + "/", {"json": {"events": []}, "token": "admin"}),
        ("POST", labels, {"json": {"actuals": [{"prediction_id": "r-1", "label": "yes"}]}}),
        ("POST", labels, {"json": [{"prediction_id": "nope", "label": "no"}]}),
        ("POST", labels, {"json": {"actuals": 5}}),
        ("POST", labels, {"content": b"[]", "headers": {"content-type": "text/csv"}}),
        ("POST", labels, {"json": [], "token": "read"}),
        ("POST", "/v1/models/nobody/actuals", {"json": []}),
        (
            "POST",
            "/v1/cloudevents",
            {
                "params": {"model": MODEL},
                "json": {"instances": [[1.0, 2.0]]},
                "headers": _cloudevent("request", "e-1"),
            },
        ),
        (
            "POST",
            "/v1/cloudevents",
            {
                "params": {"model": MODEL},
                "json": {"predictions": ["yes"]},
                "headers": _cloudevent("response", "e-1"),
            },
        ),
        (
            "POST",
            "/v1/cloudevents",
            {
                "params": {"model": MODEL},
                "content": json.dumps(structured).encode(),
                "headers": {"content-type": "application/cloudevents+json"},
            },
        ),
        ("POST", "/v1/cloudevents", {"json": {"x": 1}, "params": {"model": MODEL}}),
        ("POST", "/v1/cloudevents", {"json": {"x": 1}, "params": {"version": "v\x001"}}),
        ("POST", "/v1/cloudevents", {"content": b"{}", "headers": {"content-type": "text/xml"}}),
        ("GET", "/v1/cloudevents", {"token": "admin"}),
    ]


def _answer(server: Server, tokens: dict[str, str], method: str, path: str, args: Any) -> Any:
    args = dict(args)
    args.pop("status", None)
    token = args.pop("token", "ingest")
    headers = dict(args.pop("headers", {}))
    if token is not None:
        headers["authorization"] = f"Bearer {tokens[token]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.request(method, path, headers=headers, **args)
    kept = {h: r.headers.get(h, "").replace(server.url, "<server>") for h in HEADERS}
    return r.status_code, kept, r.content


def test_the_fast_path_answers_as_the_documented_routes(
    servers: list[tuple[Server, dict[str, str]]],
) -> None:
    (fast, fast_tokens), (slow, slow_tokens) = servers
    statuses = set()
    for method, path, args in _requests():
        got = _answer(fast, fast_tokens, method, path, args)
        expected = _answer(slow, slow_tokens, method, path, args)
        assert got == expected, (method, path, args)
        assert got[0] == args.get("status", got[0]), got
        statuses.add(got[0])
    assert statuses >= {200, 307, 400, 401, 403, 404, 405, 413, 415, 422}, statuses


@pytest.mark.parametrize("on", [True, False])
def test_the_fast_path_stands_first_unless_set_off(tmp_path: Path, on: bool) -> None:
    settings = load_settings(
        environ={}, data_dir=str(tmp_path), ingest_fast_path=on, inference_fast_path=False
    )
    app = create_app(settings)
    first = app.router.routes[0]
    assert isinstance(first, FastRoutes) is on
    assert not on or first.names == ["predictions", "actuals", "cloudevents"]
    assert not any(isinstance(r, FastRoutes) for r in app.router.routes[1:])
    paths = app.openapi()["paths"]  # documented either way
    assert "post" in paths["/v1/models/{model}/predictions"]
    assert "post" in paths["/v1/cloudevents"]
