"""Each window's performance estimated before its labels arrive (``estimated_*``), on SQLite
and PostgreSQL: the values and intervals are those of the library (``compare()``'s
``estimated_performance``) on the window's rows; a covariate-shifted window's estimate moves
as the library's does; a regression model gets DLE's MAE and RMSE; a version without an
estimator gets no series; late labels do not read the lake again; a monitor on
``estimated_accuracy`` fires through the normal alert path to a webhook on loopback."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from pyarrow import ipc

from watchkeeper.alerts.catalog import Catalog
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.monitors import parse_monitor
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.alerts.outbox import Outbox
from watchkeeper.alerts.queries import list_alerts, list_deliveries
from watchkeeper.evaluation.estimated import EstimatedPerformance
from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.report import compare
from watchkeeper.settings import load_settings
from watchkeeper.store import migrations
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store, create_engine

HOUR = 3600
T0 = 1_714_554_000.0
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")


def draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    """A calibrated binary classifier: score = sigmoid(2 x1 + x2); ``shift`` moves x1 towards
    the decision boundary's region (a covariate shift: the scores less confident)."""
    x1 = rng.normal(shift, 1.0 if shift == 0 else 0.3, n)
    x2 = rng.normal(0, 1, n)
    s = 1 / (1 + np.exp(-(2 * x1 + x2)))
    return {
        "x1": x1,
        "x2": x2,
        "score": s,
        "pred": np.where(s > 0.5, "yes", "no"),
        "y": np.where(rng.uniform(size=n) < s, "yes", "no"),
    }


def draw_regression(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    """Noise that grows with x: a shift to large x raises the error."""
    x = rng.uniform(shift, 1 + shift, n)
    return {"x": x, "pred": 3 * x, "y": 3 * x + rng.normal(0, 0.2 + x, n)}


def send(
    service: IngestService, hour: int, columns: dict[str, Any], seed: int, model: str = "m"
) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(columns["pred"])
    table = pa.table(
        {
            "prediction_id": [f"{model}-h{hour}-s{seed}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            **{k: v for k, v in columns.items() if k != "y"},
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    got = service.ingest(model, sink.getvalue(), "application/vnd.apache.arrow.stream")
    assert got.accepted == n
    Processor(service.store, service.settings).run_once()
    return table


def setup(store: Store, tmp_path: Path) -> tuple[IngestService, Evaluator, pa.Table]:
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    reference = pa.table(draw(np.random.default_rng(0), 4000))
    service.register(
        "m", reference, target="y", prediction="pred", scores="score", window_seconds=HOUR
    )
    return service, Evaluator(store, settings.lake_dir), reference


def by_window(points: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(p["window_start"]): p for p in points}


def library(reference: pa.Table, window: pa.Table, **options: Any) -> dict[str, Any]:
    report = compare(reference, window, **options)
    assert report.estimated_performance is not None
    metrics: dict[str, Any] = report.estimated_performance["metrics"]
    return metrics


def test_a_windows_estimate_is_the_librarys_and_moves_with_a_covariate_shift(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service, evaluator, reference = setup(store, tmp_path)
    calm = send(service, 0, draw(np.random.default_rng(1), 1500), seed=1)
    shifted = send(service, 1, draw(np.random.default_rng(2), 1500, shift=0.2), seed=2)
    assert evaluator.run_once(now=T0 + 3 * HOUR) == 2

    options = {"target": "y", "prediction": "pred", "scores": "score", "multivariate": None}
    got = {name: by_window(series(store, "m", f"estimated_{name}")) for name in CLASSIFICATION}
    for window, table in ((T0, calm), (T0 + HOUR, shifted)):
        expected = library(reference, table, **options)
        for name in CLASSIFICATION:
            p, m = got[name][window], expected[name]
            assert p["value"] == pytest.approx(m["value"], rel=1e-12), name
            assert p["detail"]["low"] == pytest.approx(m["ci_low"], rel=1e-12), name
            assert p["detail"]["high"] == pytest.approx(m["ci_high"], rel=1e-12), name
            assert p["detail"]["method"] == m["ci_method"] == "cbpe-delta"
            assert p["detail"]["n"] == 1500 and p["detail"]["estimator"] == "cbpe"
    accuracy = got["accuracy"]
    # the shift to the boundary: the estimate falls, as the library's does, beyond its interval
    assert accuracy[T0 + HOUR]["detail"]["high"] < accuracy[T0]["detail"]["low"]
    assert accuracy[T0]["detail"]["reference_value"] == pytest.approx(
        accuracy[T0]["value"], abs=0.05
    )
    # no labels yet: no realized accuracy, the estimate alone
    assert series(store, "m", "accuracy") == []


def test_a_regression_model_gets_dles_mae_and_rmse(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    reference = pa.table(draw_regression(np.random.default_rng(0), 3000))
    service.register("r", reference, target="y", prediction="pred", window_seconds=HOUR)
    calm = send(service, 0, draw_regression(np.random.default_rng(1), 800), 1, model="r")
    noisy = send(service, 1, draw_regression(np.random.default_rng(2), 800, 0.8), 2, model="r")
    evaluator = Evaluator(store, settings.lake_dir)
    assert evaluator.run_once(now=T0 + 3 * HOUR) == 2
    got = {name: by_window(series(store, "r", f"estimated_{name}")) for name in ("mae", "rmse")}
    for window, table in ((T0, calm), (T0 + HOUR, noisy)):
        expected = library(reference, table, target="y", prediction="pred", multivariate=None)
        for name in ("mae", "rmse"):
            p = got[name][window]
            assert p["value"] == pytest.approx(expected[name]["value"], rel=1e-9), name
            assert p["detail"]["low"] == pytest.approx(expected[name]["ci_low"], rel=1e-9)
            assert p["detail"]["high"] == pytest.approx(expected[name]["ci_high"], rel=1e-9)
            assert p["detail"]["estimator"] == "dle"
    assert got["mae"][T0 + HOUR]["detail"]["low"] > got["mae"][T0]["detail"]["high"]
    assert series(store, "r", "estimated_accuracy") == []


def test_a_multiclass_models_scores_map_is_read_as_its_score_columns(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """The reference names the score columns (one per class, in class order); the events
    carry the ``scores`` map (``score.<class>``): the estimate is the library's on the
    reference's names."""
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    rng = np.random.default_rng(0)
    names = np.array(["a", "b", "c"])

    def three(n: int) -> dict[str, Any]:
        p = rng.dirichlet([1, 1, 1], n)
        y = (rng.uniform(size=(n, 1)) > p.cumsum(1)).sum(1)
        return {"pa": p[:, 0], "pb": p[:, 1], "pc": p[:, 2], "pred": names[p.argmax(1)],
                "y": names[y]}  # fmt: skip

    reference = pa.table(three(3000))
    scores = ["pa", "pb", "pc"]
    service.register("k", reference, target="y", prediction="pred", scores=scores,
                     window_seconds=HOUR)  # fmt: skip
    window = three(900)
    mapped = {"pred": window["pred"], **{f"score.{c}": window[f"p{c}"] for c in names}}
    send(service, 0, mapped, seed=1, model="k")
    assert Evaluator(store, settings.lake_dir).run_once(now=T0 + 2 * HOUR) == 1
    expected = library(
        reference, pa.table(window), target="y", prediction="pred", scores=scores,
        multivariate=None,
    )  # fmt: skip
    for name in CLASSIFICATION:
        [p] = series(store, "k", f"estimated_{name}")
        assert p["value"] == pytest.approx(expected[name]["value"], rel=1e-12), name
        assert p["detail"]["n"] == 900


def test_late_labels_do_not_read_the_windows_rows_again(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """Labels come: the realized accuracy joins the estimate, which is kept, not recomputed."""
    store = open_store(database_url)
    service, evaluator, _ = setup(store, tmp_path)
    columns = draw(np.random.default_rng(3), 600)
    table = send(service, 0, columns, seed=3)
    [hook] = [s for s in evaluator.series if isinstance(s, EstimatedPerformance)]
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1 and hook.windows_read == 1
    [before] = series(store, "m", "estimated_accuracy")
    ids = table["prediction_id"].to_pylist()
    labels = columns["y"].tolist()
    body = {"actuals": [{"prediction_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]}
    service.actuals("m", json.dumps(body).encode())
    Processor(store, service.settings).run_once()
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1
    assert hook.windows_read == 1, "the window's rows were read again for its labels"
    [after] = series(store, "m", "estimated_accuracy")
    [realized] = series(store, "m", "accuracy")
    assert after["value"] == before["value"]
    # the realized value near the estimate: within two half-widths of its 95 % interval
    width = after["detail"]["high"] - after["detail"]["low"]
    assert abs(realized["value"] - after["value"]) <= width


def test_a_version_without_an_estimator_gets_no_series(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service, evaluator, _ = setup(store, tmp_path)
    with store.engine.begin() as conn:  # as registered before revision 0013
        conn.execute(t.versions.update().values(reference_estimation=None))
    send(service, 0, draw(np.random.default_rng(5), 500), seed=5)
    # a classifier registered without its scores has no estimator either
    bare = pa.table(draw(np.random.default_rng(6), 500)).drop_columns(["score"])
    service.register("noscores", bare, target="y", prediction="pred", window_seconds=HOUR)
    assert store.reference_estimation("noscores", "v1") is None
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1
    for name in CLASSIFICATION:
        assert series(store, "m", f"estimated_{name}") == []
    assert len(series(store, "m", "drift_statistic", feature="x1")) == 1


def test_a_version_registered_before_revision_0013_has_no_estimator(
    module_databases: Callable[[], str], open_store: Callable[[str], Store]
) -> None:
    """A database at revision 0012 with a version; opened by this release it is upgraded in
    place and the version's estimator is null."""
    url = module_databases()
    engine = create_engine(url)
    script = migrations.script_directory()

    def upgrade(heads: Any, _context: Any) -> Any:
        return script._upgrade_revs("0012", heads)

    with engine.begin() as conn:
        with EnvironmentContext(Config(), script, fn=upgrade, destination_rev="0012") as env:
            env.configure(connection=conn, target_metadata=t.metadata)
            env.run_migrations()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("wk_model_versions")}
        assert "reference_estimation" not in columns
        conn.execute(
            t.models.insert().values(
                name="old", created_at=1.0, champion="v1", window_seconds=60,
                label_horizon_seconds=1.0, retention_days=1.0, segments=[],
            )
        )  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO wk_model_versions (model, version, created_at, schema, "
                "reference_profile, reference_rows) VALUES ('old', 'v1', 1.0, '{}', :p, 10)"
            ),
            {"p": b"\x00"},
        )
    engine.dispose()
    store = open_store(url)
    assert store.schema_version == migrations.head()
    assert store.reference_estimation("old", "v1") is None


def test_a_monitor_on_estimated_accuracy_fires_and_resolves_through_a_webhook(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path, webhook_receiver: Any
) -> None:
    """Before any label: the shifted window's estimated accuracy falls below the monitor's
    bound and fires; the calm window after resolves it; both delivered to a loopback webhook."""
    store = open_store(database_url)
    service, evaluator, _ = setup(store, tmp_path)
    built = build_notifiers({"hook": {"type": "webhook", "url": webhook_receiver.url}})
    monitor = {
        "name": "est",
        "model": "m",
        "metric": "estimated_accuracy",
        "condition": "< 0.7",
        "severity": "critical",
    }
    parsed = [parse_monitor(monitor, notifiers=list(built), source="config")]
    engine = AlertEngine(store, Catalog(store, parsed, built), built, public_url="http://wk.test")
    evaluator.after_pass.append(engine.run_once)
    box = Outbox(store, built, max_attempts=3, backoff=0.01, timeout=5.0)

    send(service, 0, draw(np.random.default_rng(6), 800), seed=6)
    send(service, 1, draw(np.random.default_rng(7), 800, shift=0.1), seed=7)
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 2
    [alert] = list_alerts(store, state="firing")
    est = by_window(series(store, "m", "estimated_accuracy"))
    assert alert["metric"] == "estimated_accuracy" and alert["window_start"] == T0 + HOUR
    assert alert["value"] == est[T0 + HOUR]["value"] < 0.7 < est[T0]["value"]
    deliver(store, box)
    [fired] = webhook_receiver.delivered
    body = fired.json()["alert"]
    assert (body["state"], body["metric"]) == ("firing", "estimated_accuracy")
    assert body["value"] == pytest.approx(est[T0 + HOUR]["value"])

    send(service, 2, draw(np.random.default_rng(8), 800), seed=8)
    assert evaluator.run_once(now=T0 + 3 * HOUR) == 1
    assert list_alerts(store, state="firing") == []
    deliver(store, box)
    states = [r.json()["alert"]["state"] for r in webhook_receiver.delivered]
    assert states == ["firing", "resolved"]


def deliver(store: Store, box: Outbox) -> None:
    deadline = time.monotonic() + 20
    while list_deliveries(store, status="pending") and time.monotonic() < deadline:
        box.run_once()
        time.sleep(0.02)


def test_only_the_whole_models_windows_get_the_series(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """A model with a segment column: its all-segments window (``*``) is estimated on all its
    rows; a segment's window is not."""
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    rng = np.random.default_rng(9)
    reference = pa.table({**draw(rng, 3000), "region": rng.choice(["eu", "us"], 3000)})
    service.register("m", reference, target="y", prediction="pred", scores="score",
                     segments="region", window_seconds=HOUR)  # fmt: skip
    send(service, 0, {**draw(rng, 900), "region": rng.choice(["eu", "us"], 900)}, seed=9)
    evaluator = Evaluator(store, settings.lake_dir)
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 3  # *, region=eu, region=us
    [whole] = series(store, "m", "estimated_accuracy")
    assert whole["segment"] == "*" and whole["detail"]["n"] == 900
    for region in ("eu", "us"):
        assert series(store, "m", "estimated_accuracy", segment=f"region={region}") == []
