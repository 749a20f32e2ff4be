"""Retrain → challenger, on both backends: the model a retraining command wrote is registered
with a reference of its own answers on the exported window (not the old version's), is fed
the inputs the old version's model took (a segment column among them), and a boolean input
reaches it as the lake keeps it ("true")."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score

from watchkeeper.alerts.export import export_window
from watchkeeper.alerts.reference import reference_value
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.promotion.challenger import from_job
from watchkeeper.serving.artifacts import attach
from watchkeeper.serving.predict import predict_rows, score
from watchkeeper.serving.registry import ServedModels
from watchkeeper.settings import Settings
from watchkeeper.store import promotion as states
from watchkeeper.store.state import Store

sio = pytest.importorskip("skops.io")
INPUTS = ["x1", "flag", "region"]  # the champion's inputs: a segment column is one of them


def world(n: int, seed: int) -> dict[str, Any]:
    """The label is "yes" when x1 > 0 in region eu and flag is set in region us."""
    rng = np.random.default_rng(seed)
    x1, flag = np.round(rng.normal(size=n), 4), rng.random(n) < 0.5
    region = rng.choice(["eu", "us"], n)
    y = np.where(np.where(region == "eu", x1 > 0, flag), "yes", "no")
    return {"x1": x1, "flag": flag, "region": region, "y": y}


def pipeline() -> Any:
    """Fit on one 2-D array of INPUTS (no names): categories one-hot, unknown ones refused."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    prepare = ColumnTransformer(
        [("x1", "passthrough", [0]), ("cats", OneHotEncoder(handle_unknown="error"), [1, 2])]
    )
    interactions = PolynomialFeatures(2, interaction_only=True)
    return Pipeline([("prepare", prepare), ("i", interactions), ("lr", LogisticRegression())])


def as_served(table: pa.Table) -> np.ndarray:
    """INPUTS of an exported window as one object array (the lake's text: "true")."""
    out = np.empty((table.num_rows, len(INPUTS)), dtype=object)
    for j, name in enumerate(INPUTS):
        out[:, j] = table.column(name).to_pylist()
    return out


@pytest.fixture
def exported(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> tuple[Store, Settings, Path]:
    """Model ``m``: v1 (prediction ``p``, score ``p_yes``, segment ``region``) served by a
    model that knows x1 only; 300 of its labelled predictions exported as a retraining job
    exports them."""
    store = open_store(database_url)
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    service = IngestService(store, settings)
    w = world(300, 0)
    old = ["yes" if v > 0 else "no" for v in w["x1"]]
    reference = pa.table({**w, "p": old, "p_yes": [0.9 if v == "yes" else 0.1 for v in old]})
    service.register(
        "m", reference, target="y", prediction="p", scores="p_yes", segments="region",
        window_seconds=3600,
    )  # fmt: skip
    champion = pipeline().fit(
        as_served(pa.table({**w, "flag": np.where(w["flag"], "true", "false")})), w["y"]
    )
    attach(store, settings, "m", "v1", data=sio.dumps(champion), fmt="skops", features=INPUTS)
    live, now = world(300, 1), time.time()
    events = [
        {
            "prediction_id": f"e{i}", "timestamp": now, "version": "v1",
            "features": {"x1": float(live["x1"][i]), "flag": bool(live["flag"][i])},
            "segments": {"region": str(live["region"][i])},
            "prediction": "yes" if live["x1"][i] > 0 else "no",
            "scores": {"yes": 0.8, "no": 0.2},
        }
        for i in range(300)
    ]  # fmt: skip
    body = json.dumps({"events": events}).encode()
    assert service.ingest("m", body, "application/json").accepted == 300
    Processor(store, settings).run_once()
    labels = [{"prediction_id": f"e{i}", "label": str(live["y"][i])} for i in range(300)]
    assert service.actuals("m", json.dumps({"actuals": labels}).encode())["matched"] == 300
    dataset = tmp_path / "job-7.parquet"
    window = int(now // 3600 * 3600)
    assert export_window(store, settings.lake_dir, "m", "v1", window, dataset) == 300
    return store, settings, dataset


def test_the_new_versions_reference_holds_its_own_answers(
    exported: tuple[Store, Settings, Path], tmp_path: Path
) -> None:
    store, settings, dataset = exported
    window = pq.read_table(dataset)
    assert set(window.column("flag").to_pylist()) == {"true", "false"}  # the lake's spelling
    new = pipeline().fit(as_served(window), window.column("label").to_pylist())
    output = tmp_path / "job-7.model"
    sio.dump(new, output)

    note = from_job(store, settings, {"id": 7, "model": "m", "version": "v1"}, dataset, output)

    assert "as version retrain-7" in note and "300 reference rows" in note
    ours = new.predict(as_served(window)).tolist()
    yes = new.predict_proba(as_served(window))[:, list(new.classes_).index("yes")]
    sample = pq.read_table(io.BytesIO(store.version("m", "retrain-7")["reference_sample"]))
    assert sample.num_rows == 300  # every row, in the window's order
    assert sample.column("p").to_pylist() == ours
    assert sample.column("p").to_pylist() != window.column("p").to_pylist()  # not v1's
    assert np.allclose(sample.column("p_yes").to_numpy(), yes)
    assert sample.column("y").to_pylist() == window.column("label").to_pylist()
    expected = accuracy_score(window.column("label").to_pylist(), ours)
    assert expected > 0.9
    assert reference_value(store, "m", "retrain-7", "accuracy", "") == pytest.approx(expected)
    assert reference_value(store, "m", "v1", "accuracy", "") != pytest.approx(expected)
    assert states.challengers(store, "m")[0]["version"] == "retrain-7"


def test_the_new_version_is_fed_the_champions_inputs_booleans_as_the_lake_keeps_them(
    exported: tuple[Store, Settings, Path], tmp_path: Path
) -> None:
    store, settings, dataset = exported
    window = pq.read_table(dataset)
    new = pipeline().fit(as_served(window), window.column("label").to_pylist())
    output = tmp_path / "job-7.model"
    sio.dump(new, output)
    from_job(store, settings, {"id": 7, "model": "m", "version": "v1"}, dataset, output)

    served = ServedModels(store, settings)
    assert served.get("m", "retrain-7").features == INPUTS  # the segment region included
    columns = {"x1": [0.5, -0.5, 0.2], "flag": [True, False, True], "region": ["eu", "us", "us"]}
    scored, _ = predict_rows(served, "m", "retrain-7", columns)
    rows = np.array([[0.5, "true", "eu"], [-0.5, "false", "us"], [0.2, "true", "us"]], object)
    assert scored.predictions == new.predict(rows).tolist()
    # the champion (trained on "true"/"false", unknown categories refused) answers a request's
    # True as "true", and the lake keeps the same "true" for that row
    answer = score(served, "m", columns, prediction_ids=["s0", "s1", "s2"])
    assert answer.version == "v1" and len(answer.predictions) == 3
    Processor(store, settings).run_once()
    lake = [r for p in settings.lake_dir.rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    logged = {
        r["prediction_id"]: r["flag"] for r in lake if r["prediction_id"] in answer.prediction_ids
    }
    assert logged == {"s0": "true", "s1": "false", "s2": "true"}


def test_a_model_without_the_champions_inputs_is_refused_by_name(
    exported: tuple[Store, Settings, Path], tmp_path: Path
) -> None:
    store, settings, dataset = exported
    from sklearn.linear_model import LogisticRegression

    window = pq.read_table(dataset)
    one = LogisticRegression().fit(window.select(["x1"]).to_pandas().to_numpy(), window["label"])
    output = tmp_path / "job-8.model"
    sio.dump(one, output)
    with pytest.raises(Exception, match=r"takes 1 unnamed inputs but 3 features"):
        from_job(store, settings, {"id": 8, "model": "m", "version": "v1"}, dataset, output)
    assert [v["version"] for v in store.versions("m")] == ["v1"]
