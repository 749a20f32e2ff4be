"""Validation beyond types, through the real HTTP server on SQLite and on PostgreSQL: rules per
column set at registration (quarantine or count), values the store cannot hold, implausible
values, and bad labels — each rejected alone with its reason while the rest flows on."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

Events = Callable[..., list[dict[str, Any]]]
WaitFor = Callable[..., None]

RULES = {
    "version": 1,
    "columns": {
        "age": {"min_value": 0, "max_value": 120},
        "plan": {"value_set": ["basic", "plus", "pro"]},
    },
}


@pytest.fixture(scope="module")
def server(module_server: Any, module_databases: Callable[[], str]) -> Any:
    return module_server(module_databases())


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def register(client: httpx.Client, reference: pa.Table, name: str, **query: str) -> str:
    model = f"{name}-{time.monotonic_ns()}"
    buf = io.BytesIO()
    pq.write_table(reference, buf)
    r = client.put(
        f"/v1/models/{model}/versions/v1",
        params={"prediction": "pred", "segments": "region", **query},
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text
    return model


def post(client: httpx.Client, model: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    r = client.post(
        f"/v1/models/{model}/predictions",
        content=json.dumps({"events": events}).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def status(client: httpx.Client, model: str) -> dict[str, Any]:
    r = client.get(f"/v1/models/{model}")
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def reasons(answer: dict[str, Any], key: str = "errors") -> dict[str, list[tuple[str, str]]]:
    return {
        e["prediction_id"]: [(r["field"], r["problem"]) for r in e["reasons"]] for e in answer[key]
    }


def processor_errors(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "watchkeeper_processor_errors":
            return float(family.samples[0].value)
    raise AssertionError("no watchkeeper_processor_errors_total in /metrics")


def test_rules_quarantine_a_violating_event_with_a_reason_per_field(
    client: httpx.Client, reference: pa.Table, make_events: Events
) -> None:
    model = register(client, reference, "rules", constraints=json.dumps(RULES))
    events = make_events(["ok", "old", "gold", "both"])
    events[1]["features"]["age"] = 150
    events[2]["features"]["plan"] = "gold"
    events[3]["features"].update(age=-1, plan="gold")
    answer = post(client, model, events)
    assert (answer["accepted"], answer["rejected"]) == (1, 3)
    assert reasons(answer) == {
        "old": [("age", "150.0 is above the maximum 120")],
        "gold": [("plan", "'gold' is not one of the allowed values ['basic', 'plus', 'pro']")],
        "both": [
            ("age", "-1.0 is below the minimum 0"),
            ("plan", "'gold' is not one of the allowed values ['basic', 'plus', 'pro']"),
        ],
    }
    quarantined = client.get(f"/v1/models/{model}/quarantine").json()
    assert "above the maximum" in json.dumps(quarantined)
    assert status(client, model)["violations_total"] == 0


def test_rules_under_count_accept_the_event_and_count_the_violation(
    client: httpx.Client, reference: pa.Table, make_events: Events, wait_for: WaitFor
) -> None:
    model = register(
        client, reference, "count", constraints=json.dumps(RULES), on_violation="count"
    )
    events = make_events(["a", "b", "c"])
    events[1]["features"]["age"] = 150
    answer = post(client, model, events)
    assert (answer["accepted"], answer["rejected"]) == (3, 0)
    assert reasons(answer, "warnings") == {"b": [("age", "150.0 is above the maximum 120")]}
    assert status(client, model)["violations_total"] == 1
    again = post(client, model, events)  # a retry: duplicates, not counted twice
    assert again["duplicates"] == 3 and "warnings" not in again
    assert status(client, model)["violations_total"] == 1
    metrics = client.get("/metrics").text
    assert f'watchkeeper_rule_violation_events_total{{model="{model}"}} 1.0' in metrics


def test_rules_suggested_from_the_reference_at_registration(
    client: httpx.Client, reference: pa.Table, make_events: Events
) -> None:
    model = register(client, reference, "suggested", constraints="suggest")
    events = make_events(["in", "out"])
    events[1]["features"]["plan"] = "platinum"
    answer = post(client, model, events)
    assert [e["prediction_id"] for e in answer["errors"]] == ["out"]
    bad = client.put(
        f"/v1/models/{model}x/versions/v1",
        params={"constraints": json.dumps({"columns": {"nope": {"min_value": 1}}})},
        content=b"a,b\n1,2\n",
        headers={"content-type": "text/csv"},
    )
    assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"], bad.text


def test_values_the_store_cannot_hold_or_implausible_are_rejected_and_the_rest_flows(
    client: httpx.Client, reference: pa.Table, make_events: Events, wait_for: WaitFor
) -> None:
    model = register(client, reference, "poison")
    now = time.time()
    events = make_events(["good1", "ms", "century", "2050", "neg", "slow", "inf", "good2"])
    long_id = make_events(["x" * 250])[0]
    long_prediction = make_events(["longpred"])[0]
    long_prediction["prediction"] = "y" * 500
    unknown_version = dict(make_events(["z" * 250])[0], version="nope")
    events[1]["timestamp"] = now * 1000  # milliseconds
    events[2]["timestamp"] = now - 100 * 365 * 86400
    events[3]["timestamp"] = 2_524_608_000  # 2050: beyond a 32-bit bucket too
    events[4]["latency_ms"] = -5
    events[5]["latency_ms"] = 1e300
    events[6]["features"]["age"] = float("inf")
    answer = post(client, model, [*events, long_id, long_prediction, unknown_version])
    assert answer["accepted"] == 2, answer
    why = reasons(answer)
    assert why["z" * 200] == [("version", "unknown version 'nope'")]
    assert why["x" * 200] == [("prediction_id", "longer than the 200 characters the store holds")]
    assert why["longpred"] == [("prediction", "longer than the 400 characters the store holds")]
    assert "milliseconds?" in why["ms"][0][1] and why["ms"][0][0] == "timestamp"
    assert "days before ingest" in why["century"][0][1]
    assert why["2050"][0][0] == "timestamp"
    assert why["neg"] == [("latency_ms", "negative: -5")]
    assert why["slow"] == [("latency_ms", "1e+300 is above the maximum 8.64e+07")]
    assert why["inf"] == [("age", "not a finite number: inf")]
    info = status(client, model)
    wait_for(lambda: status(client, model)["events_pending"] == 0, "the processor to catch up")
    assert status(client, model)["events_total"] == 2
    assert info["quarantined_total"] == 9
    assert processor_errors(client) == 0


def test_a_bad_label_is_rejected_alone_with_its_reason(
    client: httpx.Client, reference: pa.Table, make_events: Events
) -> None:
    model = register(client, reference, "labels")
    post(client, model, make_events(["p1", "p2"]))
    body = {
        "actuals": [
            {"prediction_id": "p1", "label": "yes"},
            {"prediction_id": "p2", "label": "z" * 500},
            {"prediction_id": "q" * 250, "label": "no"},
            {"prediction_id": "p2", "label": float("nan")},
            {"prediction_id": "p2", "label": "Infinity"},
        ]
    }
    r = client.post(
        f"/v1/models/{model}/actuals",
        content=json.dumps(body).encode(),  # NaN as the JSON token NaN
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["matched"] == 1 and answer["rejected"] == 4, answer
    assert [(e["index"], e["reasons"][0]["field"]) for e in answer["errors"]] == [
        (1, "label"),
        (2, "prediction_id"),
        (3, "label"),
        (4, "label"),
    ]
    assert answer["errors"][1]["reasons"][0]["problem"] == (
        "longer than the 200 characters the store holds"
    )
    assert "not a finite value" in answer["errors"][2]["reasons"][0]["problem"]


def test_sdk_and_cli_register_a_great_expectations_suite(
    server: Any, client: httpx.Client, reference: pa.Table, make_events: Events, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from watchkeeper.cli import main
    from watchkeeper.sdk import Client

    suite = {
        "expectation_suite_name": "churn",
        "expectations": [
            {
                "expectation_type": "expect_column_values_to_be_between",
                "kwargs": {"column": "age", "min_value": 0, "max_value": 120},
            }
        ],
        "meta": {"watchkeeper": {"on_violation": "count"}},
    }
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    sdk = Client(server.url, spool_dir=tmp_path / "spool")
    try:
        sdk.register("sdk-ge", reference, prediction="pred", constraints=tmp_path / "suite.json")
    finally:
        sdk.close()
    pq.write_table(reference, tmp_path / "ref.parquet")
    args = ["register", "cli-ge", str(tmp_path / "ref.parquet"), "--prediction", "pred"]
    args += ["--constraints", str(tmp_path / "suite.json"), "--on-violation", "quarantine"]
    result = CliRunner().invoke(main, [*args, "--url", server.url])
    assert result.exit_code == 0, result.output
    events = make_events(["fine", "old"])
    events[1]["features"]["age"] = 130
    counted, rejected = post(client, "sdk-ge", events), post(client, "cli-ge", events)
    assert (counted["accepted"], len(counted["warnings"])) == (2, 1)  # the suite's policy
    assert (rejected["accepted"], rejected["rejected"]) == (1, 1)  # the option wins
    suite["expectations"].append(
        {"expectation_type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {}}
    )
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    result = CliRunner().invoke(main, [*args, "--url", server.url, "--version", "v2"])
    assert result.exit_code != 0
    assert "expect_column_kl_divergence_to_be_less_than" in result.output
