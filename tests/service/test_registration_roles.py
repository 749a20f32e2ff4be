"""Column roles at registration, through the real HTTP server on SQLite and on PostgreSQL: a
column that looks like the model's score (or an epoch time) is not made a required feature,
the answer gives each column's role and why, and ``features`` / ``ignore`` override — by the
API, the SDK and the command line, with errors naming the column."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyarrow import ipc

from tests.service.fixtures import EVENT_TIME
from watchkeeper.cli import main
from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.sdk import Client, RequestError
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary


@pytest.fixture(scope="module")
def server(module_server: Any, module_databases: Callable[[], str]) -> Any:
    return module_server(module_databases())


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def churn_reference(rows: int = 300, seed: int = 0, **extra: Any) -> pa.Table:
    """Inputs ``age``, ``plan``, ``credit_score`` (300 to 850: an input named like a score),
    the binary prediction ``pred`` and its probability ``churn_score``, plus ``extra``."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "age": rng.normal(40, 10, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "credit_score": rng.uniform(300, 850, rows),
            "pred": rng.choice(["yes", "no"], rows),
            "churn_score": rng.uniform(0, 1, rows),
            **extra,
        }
    )


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def put(client: httpx.Client, reference: pa.Table, name: str, **query: str) -> httpx.Response:
    buf = io.BytesIO()
    pq.write_table(reference, buf)
    return client.put(
        f"/v1/models/{name}-{time.monotonic_ns()}/versions/v1",
        params=query,
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )


def roles_of(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["role"], c["reason"]) for c in answer["roles"]}


def events(n: int, *, seed: int = 1, **features: Any) -> list[dict[str, Any]]:
    """Events carrying ``age``, ``plan`` and ``credit_score`` (and ``features``), no score."""
    rng = np.random.default_rng(seed)
    return [
        {
            "prediction_id": f"e{seed}-{i}",
            "timestamp": EVENT_TIME + i,
            "features": {
                "age": float(rng.normal(40, 10)),
                "plan": "basic",
                "credit_score": 600.0,
                **features,
            },
            "prediction": "yes",
        }
        for i in range(n)
    ]


def post(client: httpx.Client, model: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    r = client.post(f"/v1/models/{model}/predictions", json={"events": batch})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_a_score_column_is_not_a_required_feature_without_scores(client: httpx.Client) -> None:
    r = put(client, churn_reference(), "score", prediction="pred")
    assert r.status_code == 201, r.text
    answer = r.json()
    model = answer["model"]
    # events without churn_score are accepted: it is no required feature
    result = post(client, model, events(5))
    assert (result["accepted"], result["rejected"]) == (5, 0), result
    roles = roles_of(answer)
    assert roles["churn_score"] == (
        "score",
        "named like a score, values in [0, 1], beside the binary prediction 'pred'",
    )
    assert roles["credit_score"][0] == "feature"  # its values are not probabilities
    assert roles["credit_score"][1].startswith("named like a score, but its values are not")
    assert roles["age"] == ("feature", "inferred: numeric, required (no nulls)")
    assert roles["pred"] == ("prediction", "given as prediction")
    assert [c["name"] for c in answer["roles"]] == [c["name"] for c in answer["schema"]["columns"]]
    # nor a drift feature: the metrics API names the valid ones
    r = client.get(
        f"/v1/models/{model}/metrics",
        params={"metric": "drift_statistic", "feature": "churn_score"},
    )
    assert r.status_code == 404 and r.json()["error"]["message"].endswith(
        "valid: age, credit_score, plan"
    ), r.text


def test_ambiguous_look_alikes_are_ignored_and_say_why(client: httpx.Client) -> None:
    rng = np.random.default_rng(3)
    epoch = (EVENT_TIME - rng.uniform(0, 86400 * 30, 300)).astype(np.int64)
    reference = churn_reference(
        p_yes=rng.uniform(0, 1, 300), created_at=pa.array(epoch, pa.int64())
    )
    r = put(client, reference, "ambiguous", prediction="pred")
    assert r.status_code == 201, r.text
    roles = roles_of(r.json())
    for name in ("churn_score", "p_yes"):
        assert roles[name] == (
            "ignored",
            "named like a score, values in [0, 1], one of 2 such columns",
        )
    assert roles["created_at"] == ("ignored", "named like a time, values look like epoch times")
    assert r.json()["schema"]["columns"][-1] == {
        "name": "created_at", "type": "numeric", "role": "ignored", "nullable": False,
        "drift": False, "dtype": "int64",
    }  # fmt: skip
    result = post(client, r.json()["model"], events(4))
    assert (result["accepted"], result["rejected"]) == (4, 0), result
    assert result.get("ignored_fields", []) == []
    # no prediction given: the one look-alike is not guessed as the score either
    alone = put(client, churn_reference(), "noprediction")
    assert roles_of(alone.json())["churn_score"] == (
        "ignored",
        "named like a score, values in [0, 1], no prediction column given",
    )
    multiclass = churn_reference().set_column(
        3, "pred", pa.array(np.random.default_rng(1).choice(["a", "b", "c"], 300))
    )
    three = put(client, multiclass, "multiclass", prediction="pred")
    assert roles_of(three.json())["churn_score"][1].endswith("has more than two classes")


def test_overrides_make_a_feature_or_drop_a_column(client: httpx.Client) -> None:
    r = put(client, churn_reference(), "overrides", prediction="pred", features="churn_score",
            ignore="age,plan")  # fmt: skip
    assert r.status_code == 201, r.text
    roles = roles_of(r.json())
    assert roles["churn_score"] == ("feature", "given as features: numeric, required (no nulls)")
    assert roles["age"] == roles["plan"] == ("ignored", "given in ignore")
    model = r.json()["model"]
    # churn_score is now required; age and plan may be left out
    batch = [{**e, "features": {"credit_score": 600.0}} for e in events(3)]
    batch[0]["features"]["churn_score"] = 0.4
    result = post(client, model, batch)
    assert (result["accepted"], result["rejected"]) == (1, 2), result
    assert {r["field"] for e in result["errors"] for r in e["reasons"]} == {"churn_score"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"features": "nope"}, "features: column 'nope' not found; available columns: age, plan"),
        ({"ignore": "age,nope"}, "ignore: column 'nope' not found; available columns: age, plan"),
        ({"features": "age", "ignore": "age"}, "column 'age' is given as both features and ignore"),
        ({"target": "plan", "features": "plan"}, "column 'plan' is given as both target and features"),
        ({"scores": "churn_score", "ignore": "churn_score"}, "given as both scores and ignore"),
    ],
)  # fmt: skip
def test_unknown_or_contradictory_overrides_are_400(
    client: httpx.Client, query: dict[str, str], message: str
) -> None:
    r = put(client, churn_reference(), "bad", prediction="pred", **query)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "SchemaError" and message in error["message"], error


def test_the_sdk_takes_one_name_or_many(server: Any, tmp_path: Path) -> None:
    sdk = Client(server.url, spool_dir=tmp_path / "spool")
    try:
        name = f"sdk-{time.monotonic_ns()}"
        answer = sdk.register(
            name, churn_reference(), prediction="pred", features="churn_score", ignore=["age"]
        )
        roles = roles_of(answer)
        assert roles["churn_score"][0] == "feature" and roles["age"] == (
            "ignored",
            "given in ignore",
        )
        assert roles["credit_score"][0] == "feature"  # "churn_score" is one name, not letters
        with pytest.raises(RequestError) as err:
            sdk.register(name, churn_reference(), version="v2", ignore="churn")
        assert (err.value.status, err.value.error_type) == (400, "SchemaError")
        assert "ignore: column 'churn' not found; available columns: age, plan" in str(err.value)
        with pytest.raises(ValueError, match="features: 'age,plan' is not a column name"):
            sdk.register(name, churn_reference(), version="v3", features=["age,plan"])
    finally:
        sdk.close()


def test_the_command_prints_the_roles_and_takes_overrides(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "ref.parquet"
    pq.write_table(churn_reference(), path)
    name = f"cli-{time.monotonic_ns()}"
    runner = CliRunner()
    args = ["register", name, str(path), "--prediction", "pred", "--url", server.url]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.output
    lines = [" ".join(line.split()) for line in done.output.splitlines()]
    assert "column role type why" in lines
    assert (
        "churn_score score numeric named like a score, values in [0, 1], beside the binary "
        "prediction 'pred'" in lines
    )
    assert "age feature numeric inferred: numeric, required (no nulls)" in lines
    assert any("--feature COLUMN, --ignore COLUMN" in line for line in lines)
    v2 = runner.invoke(
        main, [*args, "--version", "v2", "--feature", "churn_score", "--ignore", "age,plan"]
    )
    assert v2.exit_code == 0, v2.output
    lines = [" ".join(line.split()) for line in v2.output.splitlines()]
    assert "churn_score feature numeric given as features: numeric, required (no nulls)" in lines
    assert "age ignored numeric given in ignore" in lines
    assert "plan ignored categorical given in ignore" in lines
    unknown = runner.invoke(main, [*args, "--version", "v3", "--ignore", "agee"])
    assert unknown.exit_code == 2
    assert "ignore: column 'agee' not found; available columns: age, plan" in unknown.output
    both = runner.invoke(main, [*args, "--version", "v3", "--feature", "age", "--ignore", "age"])
    assert both.exit_code == 2 and "given as both features and ignore" in both.output
    versions = json.loads(httpx.get(f"{server.url}/v1/models/{name}", timeout=30).text)["versions"]
    assert [v["version"] for v in versions] == ["v1", "v2"]


def test_ignored_and_score_columns_are_evaluated_as_no_feature(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """Processed and evaluated: an ignored column (sent or not) gets no drift or missing share,
    the inferred score no drift (its missing share, as any score column's); the features get
    both."""
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    reference = churn_reference(600, p_other=np.random.default_rng(4).uniform(0, 1, 600))
    answer = service.register(
        "m", reference, prediction="pred", ignore=["plan", "p_other"], window_seconds=HOUR
    )
    assert roles_of(answer)["churn_score"][0] == "score"  # the one look-alike left
    events = churn_reference(400, seed=5).drop_columns(["churn_score"])  # plan is sent
    events = events.append_column("prediction_id", pa.array([f"e{i}" for i in range(400)]))
    events = events.append_column("timestamp", pa.array(np.full(400, T0 + 10.0)))
    result = service.ingest("m", _ipc(events), "application/vnd.apache.arrow.stream")
    assert (result.accepted, len(result.rejected)) == (400, 0)
    Processor(store, service.settings).run_once()
    assert Evaluator(store).run_once(now=T0 + 3 * HOUR) >= 1
    evaluated = {
        metric: {name for name in ("age", "credit_score", "plan", "churn_score", "p_other")
                 if series(store, "m", metric, feature=name)}
        for metric in ("drift_statistic", "missing_share")
    }  # fmt: skip
    assert evaluated == {
        "drift_statistic": {"age", "credit_score"},
        "missing_share": {"age", "credit_score", "churn_score"},
    }
