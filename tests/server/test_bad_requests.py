"""Requests schemathesis found answered with a 500 (most on PostgreSQL): each is now a 4xx in
the error shape naming the parameter or field, or a rejected event with its reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BIG = 2**31  # one past the store's integer ids


def assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status
    for word in words:
        assert word in error["message"], (word, error["message"])


@pytest.fixture
def client(api: Any) -> Any:
    with api.server.client() as c:
        yield c


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/{model}/quarantine",
        "/v1/alerts",
        "/v1/silences",
        "/v1/deliveries",
        "/v1/retrain-jobs",
    ],
)
@pytest.mark.parametrize("name", ["limit", "offset"])
def test_a_negative_limit_or_offset_is_a_422_naming_it(
    client: httpx.Client, api: Any, path: str, name: str
) -> None:
    url = path.format(model=api.model)
    assert_error(client.get(url, params={name: -1}), 422, f"query.{name}", "greater than")
    assert_error(client.get(url, params={name: BIG * 8}), 422, f"query.{name}", "less than")
    assert client.get(url, params={name: 0}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/v1/alerts/{}", "path.alert_id"),
        ("DELETE", "/v1/silences/{}", "path.silence_id"),
        ("GET", "/v1/retrain-jobs/{}", "path.job_id"),
        ("GET", "/v1/deliveries?alert_id={}", "query.alert_id"),
        ("GET", "/v1/retrain-jobs?alert_id={}", "query.alert_id"),
    ],
)
def test_an_id_past_the_store_s_integers_is_a_422_naming_it(
    client: httpx.Client, method: str, path: str, name: str
) -> None:
    assert_error(client.request(method, path.format(BIG)), 422, name)
    assert_error(client.request(method, path.format(0)), 422, name)
    assert client.request(method, path.format(BIG - 1)).status_code in (200, 404)


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/v1/models/a%00b", {}, ("path parameter model", "NUL")),
        ("/v1/models/{model}/metrics", {"metric": "count\x00"}, ("query parameter metric",)),
        ("/v1/alerts", {"model": "\x00"}, ("query parameter model",)),
        ("/v1/monitors/x%00", {}, ("path parameter name",)),
    ],
)
def test_a_nul_character_in_a_text_parameter_is_a_400_naming_it(
    client: httpx.Client, api: Any, path: str, params: dict[str, str], words: tuple[str, ...]
) -> None:
    assert_error(client.get(path.format(model=api.model), params=params), 400, *words)


def test_an_undeclared_parameter_is_ignored_even_with_a_nul(client: httpx.Client) -> None:
    assert client.get("/v1/models", params={"x": "\x00"}).status_code == 200


def test_a_nul_character_in_a_json_body_is_a_400(client: httpx.Client) -> None:
    body = {"matchers": {"model": "m"}, "duration": "1h", "comment": "a\x00b"}
    assert_error(client.post("/v1/silences", json=body), 400, "NUL")


def test_events_with_a_nul_character_are_rejected_alone_and_the_rest_flows(
    client: httpx.Client, api: Any, make_events: Any, wait_for: Any
) -> None:
    events = make_events(["nul-a\x00", "nul-b", "nul-c", "nul-d"])
    events[1]["features"]["region"] = "e\x00u"
    events[2]["prediction"] = "yes\x00"
    r = client.post(f"/v1/models/{api.model}/predictions", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 3
    fields = [e["reasons"][0]["field"] for e in body["errors"]]
    assert fields == ["prediction_id", "region", "prediction"]
    assert all("NUL" in e["reasons"][0]["problem"] for e in body["errors"])
    labels = [{"prediction_id": "nul-d", "label": "yes"}, {"prediction_id": "x", "label": "n\x00"}]
    r = client.post(f"/v1/models/{api.model}/actuals", json={"actuals": labels})
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == 1 and r.json()["errors"][0]["reasons"][0]["field"] == "label"

    def drained() -> bool:
        return bool(client.get(f"/v1/models/{api.model}").json()["events_pending"] == 0)

    wait_for(drained, "the processor to index the accepted events")


def test_events_past_the_store_s_times_are_rejected_alone_and_the_rest_flows(
    client: httpx.Client, api: Any, make_events: Any, wait_for: Any
) -> None:
    events = make_events(["far-a", "far-b", "far-c"])
    events[0]["timestamp"] = 2.0**31  # 2038-01-19: past the 32-bit bucket and window columns
    events[1]["timestamp"] = -1e15
    r = client.post(f"/v1/models/{api.model}/predictions", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and [e["index"] for e in body["errors"]] == [0, 1]
    assert all("2038" in e["reasons"][0]["problem"] for e in body["errors"])

    def drained() -> bool:
        return bool(client.get(f"/v1/models/{api.model}").json()["events_pending"] == 0)

    wait_for(drained, "the processor to index the accepted event")
    r = client.post(f"/v1/models/{api.model}/actuals", json={"actuals": []})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("envelope", "words"),
    [
        ([1, 2], ("expected a JSON object",)),
        ({"id": "1", "type": "x.inference.request", "data_base64": "abc"}, ("base64",)),
        ({"id": "1\x00", "type": "x.request", "data": {}}, ("id", "NUL")),
    ],
)
def test_a_bad_structured_cloudevent_is_a_400(
    client: httpx.Client, api: Any, envelope: Any, words: tuple[str, ...]
) -> None:
    r = client.post(
        "/v1/cloudevents",
        params={"model": api.model},
        json=envelope,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert_error(r, 400, *words)


def test_a_null_data_base64_is_no_data(client: httpx.Client, api: Any) -> None:
    envelope = {"id": "e1", "type": "org.kubeflow.serving.inference.request", "data_base64": None}
    r = client.post(
        "/v1/cloudevents",
        params={"model": api.model},
        json=envelope | {"data": {"instances": [[1.0]]}},
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "waiting"


def test_every_route_with_a_body_refuses_a_type_it_does_not_document(
    client: httpx.Client, api: Any
) -> None:
    """Each operation of the OpenAPI document with a request body answers a ``text/plain``
    body (what a page of another site may send without a preflight) with 415 listing exactly
    its documented content types, and 415 is among its documented statuses."""
    doc = client.get("/openapi.json").json()
    checked = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            documented = list(operation["requestBody"]["content"])
            url = path.replace("{model}", api.model).replace("{version}", "v9")
            url = url.replace("{name}", "m")
            r = client.request(
                method, url, content=b'{"a": 1}', headers={"content-type": "text/plain"}
            )
            if path.startswith("/v2/"):  # the Open Inference Protocol's error: a string
                assert r.status_code == 415, r.text
                assert "'text/plain'" in r.json()["error"], r.text
                assert ", ".join(documented) in r.json()["error"], r.text
            else:
                assert_error(r, 415, "'text/plain'", ", ".join(documented))
            assert "415" in operation["responses"], (method, path)
            checked.append(f"{method.upper()} {path}")
    assert len(checked) >= 7, checked  # predictions, actuals, cloudevents, versions, ...
