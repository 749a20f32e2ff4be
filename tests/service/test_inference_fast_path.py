"""The inference routes' fast path (``server/inference.py``, ``server/fastroute.py``) answers as the documented routes do.

Two real servers, one with ``inference_fast_path`` off, each with tokens on and the same model
(an ONNX classifier) and a model without an artifact, get the same requests: good ones (rows,
columns, a version, OIP JSON and binary, a body with no content type) and bad ones (each
check: token, scope, Host, Origin, content type, size, JSON, NUL, shape, unknown model and
version, a method or a path of another route). Status, the headers a client reads and the
body's bytes must be equal (the scoring latency aside: the model's time, measured anew).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service import test_serving
from tests.service.fixtures import Server, ServerFactory
from tests.service.test_serving import ONNX, put_artifact, register, rows
from watchkeeper.server.app import create_app
from watchkeeper.server.fastroute import FastRoutes
from watchkeeper.settings import Settings, load_settings
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

pytest.importorskip("onnxruntime", reason="the serve extra: pip install -e '.[dev]'")
pytest.importorskip("skl2onnx")

clf, onnx_bytes = test_serving.clf, test_serving.onnx_bytes  # its fixtures, used here
LIMIT = 200_000  # max_body_bytes: the reference and the artifact fit, the big body does not
HEADERS = (
    "content-type",
    "retry-after",
    "www-authenticate",
    "inference-header-content-length",
    "allow",
    "location",
)
NAN = b'{"rows": [{"x1": NaN, "x2": 1, "x3": 2}], "prediction_ids": ["n-1"]}'
LATENCY = re.compile(rb'"latency_ms":[-+0-9.eE]+')


def _token(server: Server, scopes: list[str]) -> str:
    store = Store(Settings(database_url=server.database_url).sqlalchemy_url)
    try:
        return create_token(store, "-".join(scopes), scopes)
    finally:
        store.close()


@pytest.fixture(scope="module")
def servers(
    module_server: ServerFactory, module_databases: Callable[[], str], onnx_bytes: bytes
) -> Iterator[list[tuple[Server, dict[str, str]]]]:
    """The fast path on, then off; each with its tokens: ingest, read."""
    out = []
    for fast in ("true", "false"):
        env = {
            "WATCHKEEPER_REQUIRE_TOKENS": "true",
            "WATCHKEEPER_MAX_BODY_BYTES": str(LIMIT),
            "WATCHKEEPER_INFERENCE_FAST_PATH": fast,
        }
        server = module_server(module_databases(), env=env)
        tokens = {s: _token(server, [s]) for s in ("ingest", "read", "admin")}
        with server.client() as client:
            client.headers["authorization"] = f"Bearer {tokens['admin']}"
            register(client, "fast-m")
            assert put_artifact(client, "fast-m", onnx_bytes, ONNX).status_code == 200
            register(client, "fast-bare")  # no artifact
        out.append((server, tokens))
    yield out


def _binary(x: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    raw = x.astype("<f4").tobytes()
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    header = json.dumps(
        {
            "id": "bin-1",
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"prediction_ids": [f"b-{i}" for i in range(len(x))]},
            "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream",
    }
    return header + raw, headers


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments) of each case; ``token``: which (default ingest) or
    none; ``status``: the one expected."""
    x = rows(3)
    feats = {f"x{j + 1}": x[:, j].tolist() for j in range(3)}
    one = [{"x1": 0.1, "x2": -0.2, "x3": 0.3}]
    oip = {
        "id": "req-1",
        "inputs": [{"name": "input", "shape": [3, 3], "datatype": "FP32", "data": x.tolist()}],
        "parameters": {"prediction_ids": ["o-1", "o-2", "o-3"]},
    }
    binary, binary_headers = _binary(x)
    v1, v2 = "/v1/models/fast-m/predict", "/v2/models/fast-m/infer"
    json_type = {"content-type": "application/json"}
    return [
        ("POST", v1, {"json": {"rows": one, "prediction_ids": ["p-1"]}}),
        ("POST", v1, {"json": {"columns": feats}, "headers": {"x-prediction-ids": "c-1,c-2,c-3"}}),
        (
            "POST",
            v1,
            {"json": {"rows": one, "prediction_ids": ["p-2"]}, "params": {"version": "v1"}},
        ),
        (
            "POST",
            v1,
            {"json": {"rows": one, "prediction_ids": ["p-3"]}, "params": {"version": "v9"}},
        ),
        ("POST", v1, {"json": {"rows": one}, "token": None}),
        ("POST", v1, {"json": {"rows": one}, "token": "read"}),
        ("POST", v1, {"json": {"rows": one}, "headers": {"host": "evil.test"}}),
        ("POST", v1, {"json": {"rows": one}, "headers": {"origin": "http://evil.test"}}),
        ("POST", v1, {"content": b'{"rows": []}', "headers": {"content-type": "text/plain"}}),
        ("POST", v1, {"content": b'{"rows": []}'}),
        ("POST", v1, {"content": b'{"rows": [', "headers": json_type}),
        ("POST", v1, {"content": NAN, "headers": json_type}),
        ("POST", v1, {"content": b'{"rows": [{"x1": 1e999}]}', "headers": json_type}),
        ("POST", v1, {"content": b'{"rows": [{"x1": "a\\u0000b"}]}', "headers": json_type}),
        ("POST", v1, {"content": b" " * (LIMIT + 1), "headers": json_type}),
        ("POST", "/v1/models/fast%00m/predict", {"json": {"rows": one}}),
        ("POST", v1, {"json": {"rows": one}, "params": {"version": "v\x001"}}),
        ("POST", v1, {"json": [1, 2]}),
        ("POST", v1, {"json": {"rows": [1]}}),
        ("POST", v1, {"json": {"rows": one, "columns": feats}}),
        ("POST", v1, {"json": {"rows": [{"x1": "abc", "x2": 1, "x3": 2}]}}),
        ("POST", v1, {"json": {"rows": one, "prediction_ids": ["a", "b"]}}),
        ("POST", v1, {"json": {"rows": [{"x1": 1.0}], "prediction_ids": ["m-1"]}}),
        ("POST", "/v1/models/nobody/predict", {"json": {"rows": one}}),
        ("POST", "/v1/models/fast-bare/predict", {"json": {"rows": one, "prediction_ids": ["q"]}}),
        ("GET", v1, {"token": "admin"}),
        ("POST", v1 + "/", {"json": {"rows": one}, "token": "admin"}),
        ("POST", v2, {"json": oip}),
        ("POST", "/v2/models/fast-m/versions/v1/infer", {"json": {**oip, "id": "req-2"}}),
        ("POST", "/v2/models/fast-m/versions/v9/infer", {"json": oip}),
        ("POST", v2, {"content": json.dumps({**oip, "id": None}).encode()}),  # no type
        (
            "POST",
            v2,
            {"content": json.dumps(oip).encode(), "headers": {"content-type": "text/csv"}},
        ),
        ("POST", v2, {"content": binary, "headers": binary_headers}),
        ("POST", v2, {"content": binary[:-3], "headers": binary_headers}),
        ("POST", v2, {"json": {**oip, "id": 5}, "status": 400}),  # was a 500: echoed, not a str
        ("POST", v2, {"json": {**oip, "outputs": [{"name": "nope"}]}}),
        ("POST", v2, {"json": {"inputs": []}}),
        ("POST", v2, {"content": b"{", "headers": json_type}),
        ("POST", v2, {"json": oip, "token": "read"}),
        ("POST", "/v2/models/fast-bare/infer", {"json": oip}),
        ("POST", "/v2/models/fast-m/versions/v%001/infer", {"json": oip}),
        ("GET", v2, {"token": "admin"}),
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
    return r.status_code, kept, LATENCY.sub(b'"latency_ms":0', r.content)


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
    assert statuses >= {200, 307, 400, 401, 403, 404, 405, 413, 415}, statuses


@pytest.mark.parametrize("on", [True, False])
def test_the_fast_path_stands_first_unless_set_off(tmp_path: Path, on: bool) -> None:
    settings = load_settings(
        environ={}, data_dir=str(tmp_path), inference_fast_path=on, ingest_fast_path=False
    )
    app = create_app(settings)
    first = app.router.routes[0]
    assert isinstance(first, FastRoutes) is on
    assert not on or first.names == ["predict", "v2_infer", "v2_infer_version"]
    assert not any(isinstance(r, FastRoutes) for r in app.router.routes[1:])
    paths = app.openapi()["paths"]  # documented either way
    assert "post" in paths["/v1/models/{model}/predict"]
    assert "post" in paths["/v2/models/{model}/versions/{version}/infer"]
