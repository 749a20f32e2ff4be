"""The audit trail, on SQLite and PostgreSQL, through ``watchkeeper serve``: each kind of change
writes exactly one row naming the acting token (or ``local``, or ``cli:<user>``), with its
before and after; a refused change writes none; the database refuses to change or delete a
row; the CLI's export reads back to the rows the API lists."""

from __future__ import annotations

import csv
import getpass
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.service.fixtures import Server, ServerFactory, make_events
from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.audit import KINDS
from watchkeeper.store.state import Store

CLI = [sys.executable, "-m", "watchkeeper.cli"]
MONITOR = {"name": "audit-p95", "metric": "latency_p95", "condition": "> 0.5"}


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


@dataclass
class Secured:
    """A server requiring tokens, a store on its database, and an admin token named ``ops``."""

    server: Server
    store: Store
    admin: str
    admin_id: str
    opened: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        """A client sending ``token`` (the admin's by default), closed with the fixture."""
        c = self.server.client()
        if token != "":
            c.headers["authorization"] = f"Bearer {token or self.admin}"
        self.opened.append(c)
        return c

    def rows(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            query = sa.select(t.audit).order_by(t.audit.c.id)
            return [dict(r) for r in conn.execute(query).mappings()]


def token_create(database_url: str, name: str, scopes: str) -> str:
    return cli(
        "token", "create", name, "--scopes", scopes, "--database", database_url
    ).stdout.strip()


@pytest.fixture(scope="module")
def secured(module_databases: Callable[[], str], module_server: ServerFactory) -> Iterator[Secured]:
    database_url = module_databases()
    server = module_server(database_url, env={"WATCHKEEPER_REQUIRE_TOKENS": "true"})
    admin = token_create(database_url, "ops", "admin")
    store = Store(Settings(database_url=database_url).sqlalchemy_url)
    secured = Secured(server, store, admin, admin.split("_", 2)[1])
    yield secured
    for c in secured.opened:
        c.close()
    store.close()


def reference_bytes(seed: int = 0) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 200
    x = rng.normal(0, 1, (n, 3))
    y = np.where(x[:, 0] > 0, "yes", "no")
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": y})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def register(client: httpx.Client, model: str, version: str, **params: Any) -> httpx.Response:
    return client.put(
        f"/v1/models/{model}/versions/{version}",
        params={"target": "label", "prediction": "pred", **params},
        content=reference_bytes(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )


def skops_model() -> bytes:
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (100, 3))
    return bytes(sio.dumps(LogisticRegression().fit(x, x[:, 0] > 0)))


def one_new(secured: Secured, seen: int, kind: str, actor: str = "ops") -> dict[str, Any]:
    """The one row written since ``seen`` rows, of ``kind`` and by ``actor``."""
    new = secured.rows()[seen:]
    assert [r["kind"] for r in new] == [kind], new
    assert new[0]["actor"] == actor, new
    assert abs(new[0]["at"] - time.time()) < 60
    return new[0]


def none_new(secured: Secured, seen: int) -> None:
    assert secured.rows()[seen:] == []


def test_each_kind_of_change_writes_one_row_with_its_actor_before_and_after(
    secured: Secured,
) -> None:
    c = secured.client()
    model, done = "audited", set[str]()

    def step(
        kind: str, call: Callable[[], httpx.Response], status: int, actor: str = "ops"
    ) -> dict[str, Any]:
        seen = len(secured.rows())
        r = call()
        assert r.status_code == status, r.text
        done.add(kind)
        return one_new(secured, seen, kind, actor)

    # the admin token the fixture made with the CLI: cli:<user>
    created = [r for r in secured.rows() if r["kind"] == "token_created"]
    assert len(created) == 1 and created[0]["actor"] == cli_actor()
    assert created[0]["after"] == {"id": secured.admin_id, "name": "ops", "scopes": ["admin"]}
    assert created[0]["before"] is None and created[0]["target"] == f"token:{secured.admin_id}"
    done.add("token_created")

    # registering a new model: the model, then its version
    seen = len(secured.rows())
    assert register(c, model, "v1").status_code == 201
    first, second = secured.rows()[seen:]
    assert (first["kind"], second["kind"]) == ("model_registered", "version_registered")
    assert {first["actor"], second["actor"]} == {"ops"}
    assert first["model"] == model and first["before"] is None
    assert first["after"]["drift_reference"] == "training" and first["after"]["champion"] is None
    assert second["target"] == f"{model}/v1" and second["before"] == {"champion": None}
    assert second["after"]["champion"] == "v1" and second["after"]["reference_rows"] == 200
    done |= {"model_registered", "version_registered"}
    row = step("version_registered", lambda: register(c, model, "v2", champion="false"), 201)
    assert row["before"] == {"champion": "v1"} and row["after"]["champion"] == "v1"
    register(c, model, "v3", champion="false")

    # an artifact attached, then replaced
    put = lambda: c.put(  # noqa: E731
        f"/v1/models/{model}/versions/v1/artifact",
        content=skops_model(),
        headers={"content-type": "application/x-skops"},
        params={"features": "x1,x2,x3"},
    )
    row = step("artifact_attached", put, 200)
    assert row["before"] is None and row["after"]["format"] == "skops"
    sha = row["after"]["sha256"]
    row = step("artifact_replaced", put, 200)
    assert row["before"]["sha256"] == sha and len(row["after"]["sha256"]) == 64

    # a monitor created, replaced, deleted
    spec = {**MONITOR, "model": model}
    row = step("monitor_created", lambda: c.post("/v1/monitors", json=spec), 201)
    assert row["before"] is None and row["after"]["condition"] == "> 0.5"
    assert row["model"] == model and row["target"] == "monitor:audit-p95"
    changed = {**spec, "condition": "> 0.9"}
    row = step("monitor_replaced", lambda: c.put("/v1/monitors/audit-p95", json=changed), 200)
    assert row["before"]["condition"] == "> 0.5" and row["after"]["condition"] == "> 0.9"
    row = step("monitor_deleted", lambda: c.delete("/v1/monitors/audit-p95"), 204)
    assert row["before"]["condition"] == "> 0.9" and row["after"] is None

    # the promotion policy, twice
    path = f"/v1/models/{model}/promotion-policy"
    row = step("policy_set", lambda: c.put(path, json={"alpha": 0.01}), 200)
    assert row["before"] is None and row["after"]["alpha"] == 0.01
    row = step("policy_set", lambda: c.put(path, json={"alpha": 0.02}), 200)
    assert row["before"]["alpha"] == 0.01 and row["after"]["alpha"] == 0.02

    # a silence created and expired
    body = {"matchers": {"model": model}, "duration": 600, "comment": "deploy"}
    row = step("silence_created", lambda: c.post("/v1/silences", json=body), 201)
    silence = int(row["target"].split(":")[1])
    assert row["after"]["matchers"] == {"model": model} and row["model"] == model
    row = step("silence_expired", lambda: c.delete(f"/v1/silences/{silence}"), 200)
    assert row["before"]["expires_at"] > row["after"]["expires_at"]
    seen = len(secured.rows())  # expiring it again changes nothing: no row
    assert c.delete(f"/v1/silences/{silence}").status_code == 200
    none_new(secured, seen)

    # challengers, a promotion, a rollback, a retirement
    base = f"/v1/models/{model}"
    row = step(
        "shadow_started",
        lambda: c.post(f"{base}/versions/v2/challenge", json={"mode": "shadow"}),
        200,
    )
    assert row["before"] == {"state": "registered"} and row["after"]["mode"] == "shadow"
    row = step(
        "canary_started",
        lambda: c.post(f"{base}/versions/v3/challenge", json={"mode": "canary", "share": 0.2}),
        200,
    )
    assert row["after"] == {"state": "challenger", "mode": "canary", "share": 0.2,
                            "entity_key": None}  # fmt: skip
    row = step("promoted", lambda: c.post(f"{base}/promote", json={"version": "v2"}), 200)
    assert row["before"] == {"champion": "v1", "state": "challenger"}
    assert row["after"] == {"champion": "v2"} and row["target"] == f"{model}/v2"
    row = step("rolled_back", lambda: c.post(f"{base}/rollback"), 200)
    assert row["before"] == {"champion": "v2"} and row["after"] == {"champion": "v1"}
    row = step("retired", lambda: c.post(f"{base}/versions/v3/retire"), 200)
    assert row["before"]["state"] == "challenger" and row["after"] == {"state": "retired"}

    # dead letters (planted: what the processor gave up on), replayed and deleted
    ids = [_dead_letter(secured.store, model) for _ in range(2)]
    row = step("dead_letter_replayed", lambda: c.post(f"{base}/dead-letters/{ids[0]}/replay"), 200)
    assert row["before"] == {"id": ids[0], "version": "v1", "events": 1}
    assert isinstance(row["after"]["batch_id"], int)
    row = step("dead_letter_deleted", lambda: c.delete(f"{base}/dead-letters/{ids[1]}"), 204)
    assert row["before"]["error"] == "planted" and row["after"] is None

    # a token revoked with the CLI
    reader = token_create(secured.server.database_url, "reader", "read")
    reader_id = reader.split("_", 2)[1]
    row = step(
        "token_revoked",
        lambda: _ok(cli("token", "revoke", reader_id, "--database", secured.server.database_url)),
        200,
        actor=cli_actor(),
    )
    assert row["before"] == {"id": reader_id, "name": "reader", "scopes": ["read"]}
    assert done == set(KINDS)


def _ok(done: subprocess.CompletedProcess[str]) -> httpx.Response:
    return httpx.Response(200 if done.returncode == 0 else 500)


def _dead_letter(store: Store, model: str) -> int:
    with store.engine.begin() as conn:
        result = conn.execute(
            t.dead_batches.insert().values(
                model=model, version="v1", batch_id=0, received_at=time.time(), events=1,
                payload=b"not arrow", attempts=3, error="planted", dead_at=time.time(),
            )
        )  # fmt: skip
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def test_a_refused_change_writes_no_row(secured: Secured) -> None:
    c = secured.client()
    reader = token_create(secured.server.database_url, "audit-reader", "read")
    assert register(c, "refusals", "v1").status_code == 201
    seen = len(secured.rows())
    refused = [
        (register(c, "refusals", "v1"), 409),  # the version exists
        (c.post("/v1/monitors", json={"name": "bad", "model": "refusals"}), 400),
        (c.post("/v1/silences", json={"matchers": {"model": "x"}, "duration": "soon"}), 400),
        (c.post("/v1/models/refusals/promote", json={"version": "v1"}), 409),  # the champion
        (c.post("/v1/models/refusals/versions/v1/retire"), 409),
        (c.post("/v1/models/refusals/rollback"), 409),
        (c.put("/v1/models/refusals/promotion-policy", json={"alpha": 2}), 400),
        (c.post("/v1/models/refusals/dead-letters/999/replay"), 404),
        (c.delete("/v1/silences/99999"), 404),
        (secured.client(reader).post("/v1/monitors", json=MONITOR | {"model": "x"}), 403),
    ]
    assert [r.status_code for r, _ in refused] == [s for _, s in refused], [
        r.text for r, _ in refused
    ]
    none_new(secured, seen)


def test_the_database_refuses_to_change_or_delete_a_row(secured: Secured) -> None:
    assert secured.rows(), "the fixture's token made a row"
    before = secured.rows()
    for statement in (
        t.audit.update().values(actor="someone else"),
        t.audit.delete(),
    ):
        with (
            pytest.raises(sa.exc.DBAPIError, match="append-only"),
            secured.store.engine.begin() as conn,
        ):
            conn.execute(statement)
    if secured.store.engine.dialect.name == "postgresql":
        with (
            pytest.raises(sa.exc.DBAPIError, match="append-only"),
            secured.store.engine.begin() as conn,
        ):
            conn.execute(sa.text("TRUNCATE wk_audit"))
    assert secured.rows() == before


def test_the_api_filters_and_needs_the_admin_scope(secured: Secured) -> None:
    c = secured.client()
    assert register(c, "filtered", "v1").status_code == 201
    r = c.get("/v1/audit", params={"model": "filtered"})
    assert r.status_code == 200, r.text
    assert [e["kind"] for e in r.json()["entries"]] == ["version_registered", "model_registered"]
    r = c.get("/v1/audit", params={"kind": "token_created", "actor": cli_actor()})
    assert r.json()["entries"] and {e["kind"] for e in r.json()["entries"]} == {"token_created"}
    newest = r.json()["entries"][0]["at"]
    r = c.get("/v1/audit", params={"kind": "token_created", "since": newest + 1e-3})
    assert r.json()["entries"] == []
    r = c.get("/v1/audit", params={"kind": "token_created", "until": newest})
    assert all(e["at"] < newest for e in r.json()["entries"])
    assert c.get("/v1/audit", params={"kind": "nope"}).status_code == 422
    reader = token_create(secured.server.database_url, "peeker", "read")
    for path in ("/v1/audit", "/v1/audit/export"):
        r = secured.client(reader).get(path)
        assert r.status_code == 403 and "'admin'" in r.json()["error"]["message"], r.text


def test_the_cli_lists_and_exports_what_the_api_lists(secured: Secured, tmp_path: Path) -> None:
    c = secured.client()
    assert register(c, "exported", "v1").status_code == 201
    assert c.post(
        "/v1/silences", json={"matchers": {"model": 'x,"y"\nz'}, "duration": 60}
    ).is_success
    listed = list(reversed(c.get("/v1/audit", params={"limit": 1000}).json()["entries"]))
    options = ["--url", secured.server.url, "--token", secured.admin]

    out = tmp_path / "audit.jsonl"
    cli("audit", "export", "-o", str(out), *options)
    assert [json.loads(line) for line in out.read_text().splitlines()] == listed

    out = tmp_path / "audit.csv"
    cli("audit", "export", "--format", "csv", "-o", str(out), *options)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [
        {
            "id": int(r["id"]), "at": float(r["at"]), "actor": r["actor"], "kind": r["kind"],
            "model": r["model"] or None, "target": r["target"],
            "before": json.loads(r["before"]), "after": json.loads(r["after"]),
        }
        for r in rows
    ] == listed  # fmt: skip

    done = cli("audit", "export", "--model", "exported", *options)
    assert [json.loads(x)["kind"] for x in done.stdout.splitlines()] == [
        "model_registered",
        "version_registered",
    ]
    done = cli("audit", "list", "--model", "exported", "--json", *options)
    assert [e["kind"] for e in json.loads(done.stdout)["entries"]] == [
        "version_registered",
        "model_registered",
    ]
    done = cli("audit", "list", "--kind", "model_registered", "--since", "2020-01-01", *options)
    assert "exported" in done.stdout
    refused = cli("audit", "export", "--url", secured.server.url, "--token", "wk_x_y", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "watchkeeper: error: 401 Unauthorized: the token is not valid"
    bad = cli("audit", "list", "--since", "yesterday", *options, check=False)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_without_tokens_the_actor_is_local(
    module_databases: Callable[[], str], module_server: ServerFactory
) -> None:
    server = module_server(module_databases())
    with server.client() as c:
        assert register(c, "open", "v1").status_code == 201
        entries = c.get("/v1/audit", params={"model": "open"}).json()["entries"]
    assert [(e["kind"], e["actor"]) for e in entries] == [
        ("version_registered", "local"),
        ("model_registered", "local"),
    ]


def test_a_dashboard_action_is_recorded_as_the_signed_in_token(secured: Secured) -> None:
    c = secured.client()
    assert register(c, "viewed", "v1").status_code == 201
    assert register(c, "viewed", "v2", champion="false").status_code == 201
    browser = secured.client("")
    browser.follow_redirects = False
    token = token_create(secured.server.database_url, "alice", "admin")
    page = browser.get("/ui/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = browser.post("/ui/login", data={"token": token, "next": "/", "csrf": csrf})
    assert r.status_code == 303, r.text
    page = browser.get("/ui/models/viewed/versions")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    seen = len(secured.rows())
    r = browser.post("/ui/models/viewed/versions/v2/retire", data={"csrf": csrf})
    assert r.status_code == 303, r.text
    row = one_new(secured, seen, "retired", actor="alice")
    assert row["target"] == "viewed/v2"
    page = browser.get("/ui/audit", params={"model": "viewed", "kind": "retired"})
    assert page.status_code == 200 and 'data-actor="alice"' in page.text


def test_events_and_evaluation_write_no_rows(secured: Secured) -> None:
    """Only changes are audited: sending predictions is not one."""
    c = secured.client()
    assert register(c, "busy", "v1").status_code == 201
    seen = len(secured.rows())
    events = [{**e, "features": {"x1": 0.1, "x2": 0.2, "x3": 0.3}} for e in make_events(["a"])]
    r = c.post("/v1/models/busy/predictions", json={"events": events})
    assert r.status_code == 200, r.text
    none_new(secured, seen)
