"""The OpenAPI document is the API's contract: every route's request and response bodies,
the real error body, and every status a route returns."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper.ingest.events import parse_batch
from watchkeeper.server.app import create_app
from watchkeeper.server.errors import ErrorBody, error_body
from watchkeeper.server.schemas.alerts import MonitorSpec, SilenceIn
from watchkeeper.server.schemas.ingest import (
    ActualsBody,
    CloudEvent,
    PredictionColumns,
    PredictionEvent,
    PredictionRows,
)
from watchkeeper.settings import load_settings

ERROR_REF = "#/components/schemas/ErrorBody"
OPEN = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(load_settings(environ={}, data_dir=str(tmp_path_factory.mktemp("data"))))
    try:
        return app.openapi()
    finally:
        app.state.store.close()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
    ]


def test_every_error_response_is_the_real_error_body(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(doc)  # FastAPI's shape, never returned
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            if (path, status) == ("/v1/models/{model}/predictions", "422"):
                assert schema == {"$ref": "#/components/schemas/IngestResponse"}
            elif path == "/v2" or path.startswith("/v2/"):  # the Open Inference Protocol's
                assert schema == {"$ref": "#/components/schemas/OipErrorBody"}, (method, path)
            else:
                assert schema == {"$ref": ERROR_REF}, (method, path, status)


def _can_fail(parameter: dict[str, Any]) -> bool:
    """A parameter FastAPI checks: typed (not text), or a required query parameter."""
    types = {s.get("type") for s in parameter["schema"].get("anyOf", [parameter["schema"]])}
    required_query = parameter["in"] == "query" and parameter.get("required", False)
    return bool(types - {"string", "null"}) or required_query


TEXT = ("/metrics", "/v1/audit/export", "/v1/models/{model}/profiles/reference")


def test_every_operation_has_a_typed_success_and_the_auth_errors(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        statuses = set(op["responses"])
        success = statuses & {"200", "201", "204"}
        assert len(success) == 1, (method, path, statuses)
        (ok,) = success
        if ok != "204":
            content = op["responses"][ok]["content"]
            schema = next(iter(content.values()))["schema"]
            # text bodies: the Prometheus exposition, the audit trail's JSON lines or CSV; a
            # binary one: a version's reference profile
            assert schema.get("$ref") or path in TEXT, (method, path, schema)
        if path not in OPEN:
            assert {"401", "403"} <= statuses, (method, path)
        if "{model}" in path and method == "get":
            assert "404" in statuses, (method, path)
        if any(_can_fail(p) for p in op.get("parameters", [])):
            assert "422" in statuses, (method, path)
        if any("string" in str(p["schema"]) for p in op.get("parameters", [])):
            assert "400" in statuses, (method, path)  # a NUL character in a text parameter


def test_every_operation_but_healthz_may_answer_503_with_retry_after(doc: dict[str, Any]) -> None:
    """The database or its disk may be away for any route that reads or writes it."""
    for path, method, op in operations(doc):
        if path == "/healthz":
            assert "503" not in op["responses"], (method, path)
            continue
        assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)


def test_the_bounded_parameters_say_so(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        for p in op.get("parameters", []):
            if p["name"] in ("limit", "offset") or p["name"].endswith("_id"):
                schema = p["schema"].get("anyOf", [p["schema"]])[0]
                assert schema["type"] == "integer" and schema["minimum"] >= 0, (method, path, p)
                assert schema["maximum"] == 2**31 - 1, (method, path, p)


def test_request_bodies_are_documented_per_content_type(doc: dict[str, Any]) -> None:
    def content(path: str, method: str) -> dict[str, Any]:
        body: dict[str, Any] = doc["paths"][path][method]["requestBody"]
        assert body["required"]
        return body["content"]  # type: ignore[no-any-return]

    ingest = content("/v1/models/{model}/predictions", "post")
    assert {r["$ref"].rsplit("/", 1)[1] for r in ingest["application/json"]["schema"]["oneOf"]} == {
        "PredictionRows",
        "PredictionColumns",
    }
    for kind in (
        "application/vnd.apache.arrow.stream",
        "application/vnd.apache.arrow.file",
        "application/vnd.apache.parquet",
    ):
        assert ingest[kind]["schema"] == {"type": "string", "format": "binary"}
    assert "text/csv" in content("/v1/models/{model}/versions/{version}", "put")
    refs = {
        ("/v1/models/{model}/actuals", "post"): "ActualsBody",
        ("/v1/monitors", "post"): "MonitorSpec",
        ("/v1/monitors/{name}", "put"): "MonitorSpec",
        ("/v1/silences", "post"): "SilenceIn",
    }
    for (path, method), name in refs.items():
        schema = content(path, method)["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{name}"}
    structured = content("/v1/cloudevents", "post")["application/cloudevents+json"]
    assert structured["schema"] == {"$ref": "#/components/schemas/CloudEvent"}
    for name in ("PredictionEvent", "ErrorBody", "ErrorDetail", "IngestResponse", "ModelStatus"):
        assert name in doc["components"]["schemas"]


def test_the_error_body_model_is_what_error_body_builds() -> None:
    body = error_body(404, "NotFoundError", "model 'x' does not exist")
    assert ErrorBody.model_validate(body).model_dump() == body


def _events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "prediction_id": f"p{i}",
            "timestamp": 1_700_000_000 + i,
            "features": {"age": 30.5 + i, "plan": "basic"},
            "segments": {"region": "eu"},
            "prediction": "yes",
            "scores": {"yes": 0.7, "no": 0.3},
            "latency_ms": 12.5,
            "status": "ok",
        }
        for i in range(n)
    ]


def test_the_documented_forms_are_what_the_parser_reads() -> None:
    rows = {"events": _events(3)}
    columnar = {
        "prediction_id": ["p0", "p1"],
        "timestamp": ["2024-01-01T00:00:00Z", 1_700_000_000],
        "features": {"age": [30.5, None], "plan": ["basic", "pro"]},
        "prediction": ["yes", "no"],
        "latency_ms": [1.0, 2.0],
    }
    PredictionRows.model_validate(rows)
    PredictionColumns.model_validate(columnar)
    for event in rows["events"]:
        PredictionEvent.model_validate(event)
    assert parse_batch(json.dumps(rows).encode(), "application/json").num_rows == 3
    assert parse_batch(json.dumps(rows["events"]).encode(), "application/json").num_rows == 3
    assert parse_batch(json.dumps(columnar).encode(), None).num_rows == 2
    flat = pa.Table.from_pylist([{"prediction_id": "p0", "age": 1.0, "prediction": "yes"}])
    buf = io.BytesIO()
    pq.write_table(flat, buf)
    assert parse_batch(buf.getvalue(), "application/vnd.apache.parquet").num_rows == 1


def test_the_monitor_spec_documents_every_field_the_parser_takes() -> None:
    from watchkeeper.alerts.kinds import KINDS
    from watchkeeper.alerts.monitors import FIELDS

    assert set(MonitorSpec.model_fields) == FIELDS | set(KINDS)


def test_the_other_request_models_take_the_documented_examples() -> None:
    ActualsBody.model_validate({"actuals": [{"prediction_id": "p0", "label": "yes"}]})
    SilenceIn.model_validate({"matchers": {"model": "churn*"}, "duration": "2h"})
    MonitorSpec.model_validate(
        {"name": "acc", "model": "churn", "metric": "accuracy", "condition": "<= 0.85"}
    )
    CloudEvent.model_validate(
        {"id": "1", "type": "org.kubeflow.serving.inference.request", "data": {"instances": []}}
    )


def test_the_service_docs_name_the_error_body_and_the_contract() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "service.md").read_text(encoding="utf-8")
    assert "`ErrorBody`" in doc and "/openapi.json" in doc
