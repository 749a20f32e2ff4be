"""A nightly batch job on Spark monitored without sending its rows: the job fetches the
version's reference profile (``Client.reference_profile``), profiles its output on Spark
(``watchkeeper.spark.profile``) and pushes the window's profile (``Client.log_profile``) to a
real ``watchkeeper serve``; the window's drift then equals that of the same rows logged as
prediction events. A profile off the frozen spec gets a 400 naming the column."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

import watchkeeper
from tests.service.fixtures import ServerFactory
from watchkeeper import spark as wk_spark
from watchkeeper.sdk import Client, RequestError

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary, long closed


def reference(n: int = 3000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "x": rng.normal(0, 1, n),
            "plan": rng.choice(["basic", "plus", "pro"], n).tolist(),
            "pred": rng.choice(["a", "b"], n).tolist(),
        }
    )


def scored(n: int = 2000) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "x": rng.normal(0.5, 1, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.2, 0.3, 0.5]).tolist(),
            "pred": rng.choice(["a", "b"], n).tolist(),
        }
    )


def as_events(table: pa.Table) -> bytes:
    n = table.num_rows
    events = table.append_column(
        "prediction_id", pa.array([f"e{i}" for i in range(n)])
    ).append_column("timestamp", pa.array(T0 + np.linspace(0, HOUR - 1, n)))
    sink = io.BytesIO()
    with ipc.new_stream(sink, events.schema) as writer:
        writer.write_table(events)
    return sink.getvalue()


def drift_points(server: Any, model: str, wait_for: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def ready() -> bool:
        with server.client() as http:
            for feature in ("x", "plan"):
                r = http.get(
                    f"/v1/models/{model}/metrics",
                    params={"metric": "drift_statistic", "feature": feature},
                )
                assert r.status_code == 200, r.text
                points = r.json()["points"]
                if not points:
                    return False
                out[feature] = points
        return True

    wait_for(ready, f"the window of {model} evaluated", timeout=60)
    return out


@pytest.mark.slow  # a server, Spark and an evaluation pass: about a minute
def test_a_spark_job_pushes_its_window_profile(
    spark: Any, server: ServerFactory, tmp_path: Path, wait_for: Any
) -> None:
    srv = server(
        f"sqlite:///{tmp_path / 'state.db'}", env={"WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.5"}
    )
    client = Client(srv.url, spool_dir=tmp_path / "spool")
    try:
        for model in ("logged", "pushed"):
            client.register(model, reference(), prediction="pred", window_seconds=HOUR)
        rows = scored()
        with srv.client() as http:
            r = http.post(
                "/v1/models/logged/predictions",
                content=as_events(rows),
                headers={"content-type": "application/vnd.apache.arrow.stream"},
            )
            assert r.status_code == 200 and r.json()["accepted"] == rows.num_rows, r.text

        # the batch job: the version's frozen spec, the rows profiled on Spark, the push
        ref = watchkeeper.DatasetProfile.from_bytes(client.reference_profile("pushed"))
        sdf = spark.createDataFrame(rows).repartition(3)
        answer = client.log_profile("pushed", wk_spark.profile(sdf, ref), window=T0 + 60)
        assert answer["window_start"] == T0 and answer["rows"] == rows.num_rows

        logged = drift_points(srv, "logged", wait_for)
        pushed = drift_points(srv, "pushed", wait_for)
        for feature, points in logged.items():
            (a,), (b,) = points, pushed[feature]
            assert a["window_start"] == b["window_start"] == T0
            assert b["value"] == pytest.approx(a["value"], rel=1e-9), feature
            assert b["detail"]["drifted"] == a["detail"]["drifted"], feature
        assert logged["x"][0]["detail"]["drifted"]

        # refused: bins frozen from the batch itself, not from the version's reference
        own = wk_spark.profile(sdf, watchkeeper.profile(rows))
        with pytest.raises(RequestError) as refused:
            client.log_profile("pushed", own, window=T0)
        assert refused.value.status == 400 and "column 'x' has other bins" in str(refused.value)
        with pytest.raises(RequestError) as unknown:
            client.log_profile("nope", own, window=T0)
        assert unknown.value.status == 404
        with srv.client() as http:
            r = http.post(
                "/v1/models/pushed/profiles",
                params={"window": "yesterday"},
                content=b"WKP1",
                headers={"content-type": "application/vnd.watchkeeper.profile"},
            )
            assert 400 <= r.status_code < 500 and "window" in r.text
            r = http.post(
                "/v1/models/pushed/profiles",
                params={"window": T0},
                content=b"WKP1xx",
                headers={"content-type": "application/vnd.watchkeeper.profile"},
            )
            assert r.status_code == 400 and "profile" in r.text
    finally:
        client.close()
