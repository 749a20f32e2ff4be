"""The catalogue of window metrics against its four readers, on SQLite and PostgreSQL: every
entry is written by the evaluator, exported by ``/metrics`` as its ``exports`` say (and no
other), accepted by ``POST /v1/monitors``, and named and formatted by the dashboard; and every
metric the evaluator writes is catalogued and documented. So the catalogue cannot drift from
the code that reads it.

Two models go through the in-process app — a binary classifier with a score column and a
regressor — with two hours of events (some failed) and labels for all of them.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboard.dashboard_data import register, settle
from watchkeeper.evaluation.metrics import CATALOGUE, WindowMetric
from watchkeeper.evaluation.names import features_of
from watchkeeper.server.dashboard.render import FORMATS, environment
from watchkeeper.store import tables as t

CLASSIFIER, REGRESSOR = "classifier", "regressor"
TASKS = {CLASSIFIER: "classification", REGRESSOR: "regression"}
HOURS, PER_HOUR = 2, 60
DOCS = Path(__file__).parents[2] / "docs"
FIGURE = re.compile(r'<script type="application/json" id="fig-[\w-]+">(.*?)</script>', re.S)


@dataclass
class App:
    app: Any
    client: Any


def _send(client: Any, name: str, rng: np.random.Generator, start: int, task: str) -> None:
    """``HOURS`` closed hours of events from ``start``, one in ten failed, all labelled."""
    events, actuals = [], []
    for i in range(HOURS * PER_HOUR):
        x = float(rng.normal(0.3, 1))
        w = float(rng.normal(0, 1))  # a second feature: multivariate_pca needs two
        event: dict[str, Any] = {
            "prediction_id": f"{name}-{i}",
            "timestamp": start + i * 3600 / PER_HOUR,
            "latency_ms": float(rng.uniform(5, 80)),
            "status": "error" if i % 10 == 9 else "ok",
        }
        if task == "classification":
            p = float(rng.uniform(0, 1))
            event |= {
                "features": {"x": x, "w": w, "p_yes": p},
                "prediction": "yes" if p > 0.5 else "no",
            }
            label: Any = "yes" if rng.random() < p else "no"
        else:
            event |= {"features": {"x": x, "w": w}, "prediction": 2 * x}
            label = 2 * x + float(rng.normal(0, 0.5))
        events.append(event)
        actuals.append({"prediction_id": event["prediction_id"], "label": label})
    r = client.post(f"/v1/models/{name}/predictions", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    r = client.post(f"/v1/models/{name}/actuals", json={"actuals": actuals})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def app(
    module_databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    data_dir = tmp_path_factory.mktemp("catalogue")
    settings = load_settings(environ={}, data_dir=str(data_dir), database_url=module_databases())
    application = create_app(settings)
    client = TestClient(application, base_url="http://localhost")
    rng = np.random.default_rng(11)
    n = 1000
    x = rng.normal(0, 1, n)
    w = rng.normal(0, 1, n)  # a second feature: multivariate_pca needs two
    p_yes = rng.uniform(0, 1, n)
    register(
        client,
        CLASSIFIER,
        pa.table(
            {
                "x": x,
                "w": w,
                "p_yes": p_yes,
                "pred": np.where(p_yes > 0.5, "yes", "no"),
                "y": rng.choice(["no", "yes"], n),
            }
        ),
        "prediction=pred&target=y&scores=p_yes",
    )
    register(
        client,
        REGRESSOR,
        pa.table({"x": x, "w": w, "pred": 2 * x, "y": 2 * x + rng.normal(0, 0.5, n)}),
        "prediction=pred&target=y",
    )
    start = (int(time.time()) // 3600 - HOURS - 1) * 3600
    for name, task in TASKS.items():
        _send(client, name, rng, start, task)
    settle(application)
    try:
        yield App(application, client)
    finally:
        application.state.store.close()


def _applies(metric: WindowMetric, model: str) -> bool:
    return metric.task is None or metric.task == TASKS[model]


def _written(app: App, model: str) -> set[str]:
    mp = t.metric_points.c
    with app.app.state.store.engine.connect() as conn:
        rows = conn.execute(sa.select(mp.metric).where(mp.model == model).distinct())
        return {r.metric for r in rows}


def test_the_evaluator_writes_every_catalogued_metric_and_no_other(app: App) -> None:
    for model in TASKS:
        expected = {name for name, m in CATALOGUE.items() if _applies(m, model)}
        assert _written(app, model) == expected, model
    assert _written(app, CLASSIFIER) | _written(app, REGRESSOR) == set(CATALOGUE)


def _newest(app: App, model: str, metric: str, feature: str) -> dict[str, Any]:
    """The point of the newest window of a metric, from the JSON API."""
    params = {"metric": metric, "feature": feature}
    r = app.client.get(f"/v1/models/{model}/metrics", params=params)
    assert r.status_code == 200, r.text
    point: dict[str, Any] = r.json()["points"][-1]
    return point


def test_metrics_exports_each_metric_as_the_catalogue_says(app: App) -> None:
    """Every labelled window here: each family carries the newest window's value of each
    metric exported into it, labelled with the champion's version."""
    families = {f.name: f for f in text_string_to_metric_families(app.client.get("/metrics").text)}
    exported_as: dict[str, set[str | None]] = {}  # family → its metrics' percentiles
    for family in {e.name for m in CATALOGUE.values() for e in m.exports}:
        assert family in families, f"{family} is not on /metrics"
    for name, metric in CATALOGUE.items():
        percentile = metric.percentile
        for export in metric.exports:
            family = families[export.name]
            assert family.type == export.type and family.documentation == export.help
            for model in (m for m in TASKS if _applies(metric, m)):
                samples = [
                    s
                    for s in family.samples
                    if s.labels["model"] == model
                    and s.labels.get("percentile", percentile) == percentile
                ]
                assert samples, (name, export.name, model)
                for sample in samples:  # the newest window's value (or detail) of the point
                    assert set(sample.labels) == set(export.labels)
                    assert sample.labels["version"] == "v1"
                    point = _newest(app, model, name, sample.labels.get("feature", ""))
                    value = point["value"] if export.detail is None else point["detail"]
                    expected = value if export.detail is None else value[export.detail]
                    assert sample.value == pytest.approx(expected), (name, export.name)
                exported_as.setdefault(export.name, set()).add(percentile)
    # a shared family carries exactly the metrics exported into it, nothing uncatalogued
    for family, percentiles in exported_as.items():
        carried = {s.labels.get("percentile") for s in families[family].samples}
        assert carried == percentiles, family


def test_monitors_accept_every_catalogued_metric(app: App) -> None:
    for name, metric in CATALOGUE.items():
        for model in (m for m in TASKS if _applies(metric, m)):
            spec: dict[str, Any] = {
                "name": f"{model}-{name}",
                "model": model,
                "metric": name,
                "condition": "> 0",
            }
            if metric.per_feature:
                spec["feature"] = "x"
            r = app.client.post("/v1/monitors", json=spec)
            assert r.status_code == 201, (name, r.text)
            assert app.client.delete(f"/v1/monitors/{spec['name']}").status_code == 204
    r = app.client.post(
        "/v1/monitors",
        json={"name": "bad", "model": CLASSIFIER, "metric": "nonesuch", "condition": "> 0"},
    )
    assert r.status_code == 400 and "nonesuch" in r.text


def _shown(app: App, path: str) -> tuple[set[str], str]:
    """The trace names of every figure of a page, and the page's text outside them."""
    r = app.client.get(path)
    assert r.status_code == 200, r.text
    legends = {
        trace.get("name") for body in FIGURE.findall(r.text) for trace in json.loads(body)["data"]
    }
    return legends, FIGURE.sub("", r.text)


def test_the_dashboard_names_and_formats_every_catalogued_metric(app: App) -> None:
    """A metric the dashboard shows is named by its label: a chart's legend, or a card; a
    feature's page shows those of the feature, the model page the others (the prediction's
    own drift among them)."""
    env = environment()
    assert set(FORMATS) <= set(env.filters)
    labels = [m.label for m in CATALOGUE.values()]
    assert all(labels) and len(set(labels)) == len(labels)
    for model in TASKS:
        pages = {
            False: _shown(app, f"/ui/models/{model}?range=all"),
            True: _shown(app, f"/ui/models/{model}/features/x?range=all"),
        }
        schema = app.app.state.store.reference(model, "v1")[0]
        for metric in CATALOGUE.values():
            if metric.dashboard and _applies(metric, model):
                of_x = metric.per_feature and "x" in features_of(schema, metric.name)
                legends, text = pages[of_x]
                in_text = re.search(rf">[^<]*\b{re.escape(metric.label)}\b[^<]*<", text)
                assert metric.label in legends or in_text, (model, metric.name, legends)
    for metric in CATALOGUE.values():
        assert env.filters["metric_value"](0.5, metric.name) == FORMATS[metric.format](0.5)
        assert env.filters["metric_label"](metric.name) == metric.label


def test_every_catalogued_metric_is_documented() -> None:
    """docs/service.md's table of window metrics has a row naming each one, with a feature
    (or not) and the sample size as catalogued, and names no metric the catalogue lacks."""
    service = (DOCS / "service.md").read_text(encoding="utf-8")
    section = service.split("## Windows and evaluation", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    documented = set()
    for name, metric in CATALOGUE.items():
        [row] = [r for r in rows if f"`{name}`" in r[0]] or [None]
        assert row is not None, f"window metric {name} is not in docs/service.md"
        assert (row[1] != "—") == metric.per_feature, name
        assert row[3].strip(" |") == ("labels" if metric.sample == "labels" else "events"), name
        documented |= set(re.findall(r"`(\w+)`", row[0]))
    assert documented == set(CATALOGUE)
