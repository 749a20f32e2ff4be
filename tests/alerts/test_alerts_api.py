"""The alert routes and the CLI over a real ``watchkeeper serve`` (tokens required), on SQLite and
PostgreSQL: monitors CRUD (settings-file monitors read-only), silences, alerts, deliveries and
jobs; the one error shape naming the field; scopes; the CLI's one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.fixtures import Server

CONFIG_MONITOR = {
    "name": "cfg-floor",
    "model": "churn",
    "metric": "accuracy",
    "condition": "<= 0.85",
    "notify": ["audit"],
    "actions": [{"type": "retrain", "command": ["true"]}],
}
API_MONITOR = {
    "name": "api-p95",
    "model": "churn",
    "metric": "latency_p95",
    "condition": "> 0.5",
    "severity": "critical",
}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("watchkeeper", path=str(Path(sys.executable).parent)) or shutil.which(
        "watchkeeper"
    )
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "250", **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def served(
    module_server: Callable[..., Server],
    module_databases: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Server, dict[str, str]]:
    """A server that requires tokens, with a settings-file monitor; and an admin and a read
    token made with ``watchkeeper token create`` on its database."""
    directory = tmp_path_factory.mktemp("api")
    config = directory / "wk.yaml"
    config.write_text(
        json.dumps({"monitors": [CONFIG_MONITOR], "notifiers": {"audit": {"type": "log"}}})
    )
    database = module_databases()
    server = module_server(
        database, env={"WATCHKEEPER_CONFIG": str(config), "WATCHKEEPER_REQUIRE_TOKENS": "true"}
    )
    tokens = {}
    for scope in ("admin", "read"):
        made = cli(
            "token",
            "create",
            scope,
            "--scopes",
            scope,
            "--database",
            database,
            "--data-dir",
            str(server.data_dir),
        )
        assert made.returncode == 0, made.stderr
        tokens[scope] = made.stdout.strip()
    return server, tokens


@pytest.fixture
def admin(served: tuple[Server, dict[str, str]]) -> Iterator[httpx.Client]:
    server, tokens = served
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=30
    ) as c:
        yield c


@pytest.fixture
def reader(served: tuple[Server, dict[str, str]]) -> Iterator[httpx.Client]:
    server, tokens = served
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tokens['read']}"}, timeout=30
    ) as c:
        yield c


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["status"] == status
    return str(body["message"])


def test_monitors_crud(admin: httpx.Client, reader: httpx.Client) -> None:
    r = reader.get("/v1/monitors")
    assert r.status_code == 200
    [config] = [m for m in r.json()["monitors"] if m["name"] == "cfg-floor"]
    assert (
        config["source"] == "config" and config["kind"] == "condition" and config["targets"] == []
    )
    r = admin.post("/v1/monitors", json=API_MONITOR)
    assert r.status_code == 201, r.text
    assert r.json()["spec"] == API_MONITOR and r.json()["source"] == "api"
    assert reader.get("/v1/monitors/api-p95").json()["spec"]["severity"] == "critical"
    changed = {**API_MONITOR, "condition": "> 0.8"}
    r = admin.put("/v1/monitors/api-p95", json=changed)
    assert r.status_code == 200 and r.json()["spec"]["condition"] == "> 0.8"
    names = [m["name"] for m in reader.get("/v1/monitors").json()["monitors"]]
    assert names.count("api-p95") == 1 and "cfg-floor" in names
    assert admin.delete("/v1/monitors/api-p95").status_code == 204
    assert "does not exist" in error(reader.get("/v1/monitors/api-p95"), 404)
    assert "does not exist" in error(admin.delete("/v1/monitors/api-p95"), 404)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {**API_MONITOR, "condition": "at most 0.5"},
            400,
            "monitor 'api-p95': condition: expected an operator",
        ),
        (
            {**API_MONITOR, "notify": ["pager"]},
            400,
            "monitor 'api-p95': notify: unknown notifier(s) ['pager']; configured: ['audit']",
        ),
        (
            {**API_MONITOR, "actions": [{"type": "retrain", "command": ["rm", "-rf", "/"]}]},
            400,
            "retrain commands can be declared only in the settings file",
        ),
        ({**API_MONITOR, "name": "cfg-floor"}, 409, "declared in the settings file"),
        ([1, 2], 400, "monitor: expected a mapping"),
    ],
)
def test_bad_monitors_are_refused_naming_the_field(
    admin: httpx.Client, body: Any, status: int, message: str
) -> None:
    assert message in error(admin.post("/v1/monitors", json=body), status)


def test_monitor_names_are_unique_and_config_monitors_read_only(admin: httpx.Client) -> None:
    spec = {**API_MONITOR, "name": "dup"}
    assert admin.post("/v1/monitors", json=spec).status_code == 201
    assert "exists already" in error(admin.post("/v1/monitors", json=spec), 409)
    assert "differs from the path" in error(admin.put("/v1/monitors/other", json=spec), 400)
    assert "settings file" in error(admin.delete("/v1/monitors/cfg-floor"), 409)
    assert "settings file" in error(
        admin.put("/v1/monitors/cfg-floor", json={**spec, "name": "cfg-floor"}), 409
    )
    assert "not valid JSON" in error(
        admin.post("/v1/monitors", content=b"{", headers={"content-type": "application/json"}), 400
    )
    admin.delete("/v1/monitors/dup")


def test_silences(admin: httpx.Client, reader: httpx.Client) -> None:
    r = admin.post(
        "/v1/silences",
        json={
            "matchers": {"model": "churn*"},
            "duration": "2h",
            "comment": "deploy",
            "created_by": "ana",
        },
    )
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["active"] and s["matchers"] == {"model": "churn*"}
    assert s["expires_at"] - s["created_at"] == pytest.approx(7200)
    assert s["id"] in [
        x["id"] for x in reader.get("/v1/silences", params={"active": "true"}).json()["silences"]
    ]
    expired = admin.delete(f"/v1/silences/{s['id']}").json()
    assert not expired["active"]
    assert s["id"] not in [
        x["id"] for x in reader.get("/v1/silences", params={"active": "true"}).json()["silences"]
    ]
    assert s["id"] in [
        x["id"] for x in reader.get("/v1/silences").json()["silences"]
    ]  # history kept
    assert "silence 999999 does not exist" in error(admin.delete("/v1/silences/999999"), 404)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": {}, "duration": "1h"}, "silence matchers: give at least one"),
        ({"matchers": {"colour": "red"}, "duration": "1h"}, "unknown field(s) ['colour']"),
        ({"matchers": {"model": "m"}}, "give exactly one of duration and expires_at"),
        ({"matchers": {"model": "m"}, "duration": "forever"}, "silence duration"),
        ({"matchers": {"model": "m"}, "expires_at": 1}, "must be in the future"),
        ({"matchers": {"model": "m"}, "duration": "1h", "until": 5}, "unknown field(s) ['until']"),
    ],
)
def test_bad_silences(admin: httpx.Client, body: dict[str, Any], message: str) -> None:
    assert message in error(admin.post("/v1/silences", json=body), 400)


def test_alert_queries(reader: httpx.Client) -> None:
    assert reader.get("/v1/alerts").json() == {"alerts": []}
    assert reader.get("/v1/alerts", params={"state": "open", "model": "churn"}).json() == {
        "alerts": []
    }
    assert "query parameter state" in error(
        reader.get("/v1/alerts", params={"state": "burning"}), 400
    )
    assert "alert 424242 does not exist" in error(reader.get("/v1/alerts/424242"), 404)
    assert reader.get("/v1/deliveries", params={"status": "failed"}).json() == {"deliveries": []}
    assert "query parameter status" in error(
        reader.get("/v1/deliveries", params={"status": "lost"}), 400
    )
    assert reader.get("/v1/retrain-jobs").json() == {"jobs": []}
    assert "retrain job 7 does not exist" in error(reader.get("/v1/retrain-jobs/7"), 404)
    text = reader.get("/metrics").text
    assert "# TYPE watchkeeper_alerts_firing gauge" in text
    assert "# TYPE watchkeeper_alert_delivery_failures_total counter" in text


def test_scopes(served: tuple[Server, dict[str, str]], reader: httpx.Client) -> None:
    server, _ = served
    assert "lacks the 'admin' scope" in error(reader.post("/v1/monitors", json=API_MONITOR), 403)
    assert "lacks the 'admin' scope" in error(reader.post("/v1/silences", json={}), 403)
    assert "lacks the 'admin' scope" in error(reader.delete("/v1/silences/1"), 403)
    assert "bearer token is required" in error(httpx.get(f"{server.url}/v1/alerts"), 401)


def test_the_cli_over_the_api(served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, tokens = served
    env = {"WATCHKEEPER_URL": server.url, "WATCHKEEPER_TOKEN": tokens["admin"]}
    spec = tmp_path / "monitors.yaml"
    spec.write_text(
        "monitors:\n  - {name: cli-volume, model: churn, metric: volume, anomaly: {k: 4}}\n"
    )
    added = cli("monitors", "add", str(spec), env=env)
    assert added.returncode == 0 and added.stdout.strip() == "created monitor cli-volume", (
        added.stderr
    )
    listed = cli("monitors", "list", env=env)
    assert listed.returncode == 0 and "cli-volume" in listed.stdout and "cfg-floor" in listed.stdout
    as_json = json.loads(cli("monitors", "list", "--json", env=env).stdout)
    assert {m["name"] for m in as_json["monitors"]} >= {"cli-volume", "cfg-floor"}
    again = cli("monitors", "add", str(spec), env=env)
    assert again.returncode == 2
    assert (
        again.stderr.strip()
        == "watchkeeper: error: 409 ConflictError: monitor 'cli-volume' exists already"
    )
    assert cli("monitors", "delete", "cli-volume", env=env).returncode == 0
    made = cli(
        "silence",
        "add",
        "--model",
        "churn",
        "--severity",
        "critical",
        "--duration",
        "30m",
        "--comment",
        "maintenance",
        env=env,
    )
    assert made.returncode == 0 and made.stdout.startswith("silence "), made.stderr
    silence_id = made.stdout.split()[1]
    listed = cli("silence", "list", env=env)
    assert "model=churn, severity=critical" in listed.stdout and "maintenance" in listed.stdout
    assert (
        cli("silence", "expire", silence_id, env=env).stdout.strip()
        == f"expired silence {silence_id}"
    )
    assert silence_id not in cli("silence", "list", "--json", env=env).stdout
    assert json.loads(cli("alerts", "list", "--json", "--state", "firing", env=env).stdout) == {
        "alerts": []
    }
    missing = cli("alerts", "show", "999999", env=env)
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == "watchkeeper: error: 404 NotFoundError: alert 999999 does not exist"
    )
    no_matcher = cli("silence", "add", "--duration", "1h", env=env)
    assert no_matcher.returncode == 2 and no_matcher.stderr.count("\n") == 1
    read_only = cli(
        "silence",
        "add",
        "--model",
        "x",
        "--duration",
        "1h",
        env={**env, "WATCHKEEPER_TOKEN": tokens["read"]},
    )
    assert read_only.returncode == 2 and "403 Forbidden" in read_only.stderr
    down = cli("alerts", "list", "--url", "http://127.0.0.1:9", env=env)
    assert down.returncode == 2 and down.stderr.startswith(
        "watchkeeper: error: cannot reach the service at http://127.0.0.1:9"
    )
    assert down.stderr.count("\n") == 1
