"""The promotion routes on a real server (both backends): states, challenge, promote,
rollback, retire, the policy and its field errors, and the history they leave."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.service.fixtures import Server
from watchkeeper.server.auth import required_scope


@pytest.fixture(scope="module")
def srv(module_databases: Callable[[], str], module_server: Callable[..., Server]) -> Server:
    return module_server(module_databases())


@pytest.fixture
def model(
    srv: Server, register: Callable[..., str], reference: pa.Table
) -> Iterator[tuple[httpx.Client, str]]:
    """A model with v1 (champion) and v2, v3 registered beside it."""
    with srv.client() as client:
        name = register(client, reference, prefix="promo-")
        buf = io.BytesIO()
        pq.write_table(reference, buf)
        for v in ("v2", "v3"):
            r = client.put(
                f"/v1/models/{name}/versions/{v}",
                params={"champion": "false"},
                content=buf.getvalue(),
                headers={"content-type": "application/vnd.apache.parquet"},
            )
            assert r.status_code == 201, r.text
        yield client, name


def states(client: httpx.Client, model: str) -> dict[str, Any]:
    r = client.get(f"/v1/models/{model}/versions")
    assert r.status_code == 200, r.text
    return {v["version"]: v["state"] for v in r.json()["versions"]}


def test_challenge_promote_rollback_retire(model: tuple[httpx.Client, str]) -> None:
    client, name = model
    assert states(client, name) == {"v1": "champion", "v2": "registered", "v3": "registered"}
    r = client.post(f"/v1/models/{name}/versions/v2/challenge", json={"mode": "shadow"})
    assert r.status_code == 200 and r.json()["mode"] == "shadow", r.text
    r = client.post(
        f"/v1/models/{name}/versions/v3/challenge",
        json={"mode": "canary", "share": 0.2, "entity_key": "region"},
    )
    assert r.json() | {"since": None} == {
        "version": "v3", "state": "challenger", "mode": "canary", "share": 0.2,
        "entity_key": "region", "since": None,
    }  # fmt: skip
    r = client.post(f"/v1/models/{name}/promote", json={"version": "v2"})
    assert r.json() == {"model": name, "champion": "v2", "previous": "v1"}
    assert client.get(f"/v1/models/{name}").json()["champion"] == "v2"
    r = client.post(f"/v1/models/{name}/rollback")
    assert r.json() == {"model": name, "champion": "v1", "previous": "v2"}
    r = client.post(f"/v1/models/{name}/versions/v3/retire")
    assert r.status_code == 200 and r.json()["state"] == "retired"
    assert states(client, name) == {"v1": "champion", "v2": "retired", "v3": "retired"}
    kinds = [e["kind"] for e in client.get(f"/v1/models/{name}/history").json()["events"]]
    assert kinds[:5] == ["retired", "rolled_back", "promoted", "canary_started", "shadow_started"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("versions/v2/challenge", {"mode": "mirror"}, 400, "mode 'mirror'"),
        ("versions/v2/challenge", {}, 400, "mode: required"),
        ("versions/v2/challenge", {"mode": "canary", "share": "half"}, 400, "share 'half'"),
        ("versions/v2/challenge", {"mode": "shadow", "speed": 1}, 400, "unknown field(s)"),
        ("versions/v1/challenge", {"mode": "shadow"}, 409, "is the champion"),
        ("versions/v9/challenge", {"mode": "shadow"}, 404, "no version 'v9'"),
        ("promote", {}, 400, "version: required"),
        ("promote", {"version": "v1"}, 409, "is the champion of"),
        ("rollback", None, 409, "nothing to roll back to"),
        ("versions/v1/retire", None, 409, "promote another first"),
    ],
)
def test_bad_changes_name_the_problem(
    model: tuple[httpx.Client, str], path: str, body: Any, status: int, message: str
) -> None:
    client, name = model
    r = client.post(f"/v1/models/{name}/{path}", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_labelled", 0, "min_labelled 0: at least 10"),
        ("metric", "auc", "metric 'auc'"),
        ("alpha", 1.5, "alpha 1.5"),
        ("max_latency_ratio", 0, "max_latency_ratio 0"),
        ("max_error_rate_increase", -0.1, "max_error_rate_increase -0.1"),
        ("mode", "yes", "mode 'yes'"),
        ("metric", [["accuracy"]], "metric [['accuracy']]"),  # unhashable: a 400, not a 500
        ("colour", "red", "unknown field(s) colour"),
    ],
)
def test_a_bad_policy_answers_400_naming_the_field(
    model: tuple[httpx.Client, str], field: str, value: Any, message: str
) -> None:
    client, name = model
    r = client.put(f"/v1/models/{name}/promotion-policy", json={field: value})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


def test_the_policy_is_stored(model: tuple[httpx.Client, str]) -> None:
    client, name = model
    got = client.get(f"/v1/models/{name}/promotion-policy").json()
    assert got["configured"] is False and got["policy"]["mode"] == "manual"
    r = client.put(
        f"/v1/models/{name}/promotion-policy",
        json={"min_labelled": 300, "metric": "f1", "mode": "auto"},
    )
    assert r.status_code == 200, r.text
    got = client.get(f"/v1/models/{name}/promotion-policy").json()
    assert got["configured"] is True
    assert got["policy"] == {
        "min_labelled": 300, "metric": "f1", "alpha": 0.05, "max_latency_ratio": 2.0,
        "latency_slack_ms": 1.0, "max_error_rate_increase": 0.01, "mode": "auto",
    }  # fmt: skip
    assert client.get(f"/v1/models/{name}/verdicts").json() == {"model": name, "verdicts": []}


@pytest.mark.parametrize(
    "path", ["/v1/models/m/promote", "/v1/models/m/rollback", "/v1/models/m/versions/v/retire",
             "/v1/models/m/versions/v/challenge"],
)  # fmt: skip
def test_changes_need_the_admin_scope(path: str) -> None:
    assert required_scope("POST", path) == "admin"
    assert required_scope("PUT", "/v1/models/m/promotion-policy") == "admin"


def cli(url: str, *args: str, ok: bool = True) -> str:
    """``watchkeeper ARGS`` as a user runs it against the server."""
    exe = Path(sys.executable).with_name("watchkeeper")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "watchkeeper.cli"]
    env = {**os.environ, "COLUMNS": "200", "WATCHKEEPER_URL": url}
    done = subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_command_line(srv: Server, model: tuple[httpx.Client, str]) -> None:
    client, name = model
    assert "a challenger in shadow" in cli(srv.url, "challenge", name, "v2", "--shadow")
    out = cli(srv.url, "challenge", name, "v3", "--canary", "0.25", "--entity-key", "region")
    assert "as a canary on 25% of the requests" in out
    assert "give one of --shadow or --canary" in cli(
        srv.url, "challenge", name, "v3", "--shadow", "--canary", "0.1", ok=False
    )
    table = cli(srv.url, "versions", name)
    assert "canary" in table and "25%" in table and "shadow" in table
    assert f"{name}: champion v2 (was v1)" in cli(srv.url, "promote", name, "v2")
    assert f"{name}: champion v1 (was v2)" in cli(srv.url, "rollback", name)
    assert "retired" in cli(srv.url, "retire", name, "v3")
    assert "409 Conflict" in cli(srv.url, "rollback", name, ok=False)
    out = cli(srv.url, "promotion-policy", name, "--metric", "f1", "--mode", "auto")
    assert "metric: f1" in out and "mode: auto" in out
    out = cli(srv.url, "promotion-policy", name, "--min-labelled", "300")
    assert "metric: f1" in out and "min_labelled: 300" in out  # the other fields kept
    assert "alpha 2.0" in cli(srv.url, "promotion-policy", name, "--alpha", "2", ok=False)
    assert client.get(f"/v1/models/{name}").json()["champion"] == "v1"
    assert "challenger" in cli(srv.url, "verdicts", name)  # the table's header, no rows
