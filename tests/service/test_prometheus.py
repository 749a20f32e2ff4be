"""``/metrics`` against the Prometheus conventions, and the Grafana dashboard against ``/metrics``.

The in-process app on SQLite gets a binary classifier with a score column and a regressor,
three closed hours of events each, and labels for the first two hours only: the newest window
has no labels yet (labels lag), as in the demo. A monitor fires on the classifier's error rate.
Since promtool is not at hand, the exposition is read with ``prometheus_client``'s parser and
the naming rules are checked here: base units in the name, ``_total`` on counters only, one
unit per family.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.dashboard.dashboard_data import register, settle
from watchkeeper.evaluation.metrics import CATALOGUE, UNIT_SUFFIXES

CLASSIFIER, REGRESSOR = "classifier", "regressor"
HOURS, LABELLED_HOURS, PER_HOUR = 3, 2, 30
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "watchkeeper.json"
NAME = re.compile(r"^watchkeeper_[a-z0-9_]+$")


@dataclass
class Exposition:
    text: str
    families: dict[str, Any]  # family name (counters without _total) → family
    samples: list[Sample]
    api: Any  # the app's test client


def _send(
    client: Any,
    name: str,
    rng: np.random.Generator,
    start: int,
    *,
    version: str = "v1",
    hours: int = HOURS,
    labelled: int = LABELLED_HOURS,
) -> None:
    """``hours`` closed hours of events of a version from ``start``, one in ten failed; labels
    for the first ``labelled`` hours only."""
    events, actuals = [], []
    for i in range(hours * PER_HOUR):
        x = float(rng.normal(0.3, 1))
        w = float(rng.normal(0, 1))  # a second feature: multivariate_pca needs two
        event: dict[str, Any] = {
            "prediction_id": f"{name}-{version}-{i}",
            "version": version,
            "timestamp": start + i * 3600 / PER_HOUR,
            "latency_ms": float(rng.uniform(5, 80)),
            "status": "error" if i % 10 == 9 else "ok",
        }
        if name == CLASSIFIER:
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
        if i < labelled * PER_HOUR:
            actuals.append({"prediction_id": event["prediction_id"], "label": label})
    r = client.post(f"/v1/models/{name}/predictions", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    r = client.post(f"/v1/models/{name}/actuals", json={"actuals": actuals})
    assert r.status_code == 200, r.text


def _app(data_dir: Path) -> tuple[Any, Any]:
    """The app of ``create_app`` on SQLite in ``data_dir`` (its background threads are not
    started: ``settle`` does their work) and its test client."""
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    app = create_app(load_settings(environ={}, data_dir=str(data_dir)))
    return app, TestClient(app, base_url="http://localhost")


def _classifier(client: Any, rng: np.random.Generator, version: str = "v1") -> None:
    """Register a version of the binary classifier with a score column."""
    x, p_yes = rng.normal(0, 1, 1000), rng.uniform(0, 1, 1000)
    table = {"x": x, "w": rng.normal(0, 1, 1000), "p_yes": p_yes}
    table["pred"] = np.where(p_yes > 0.5, "yes", "no")
    table["y"] = rng.choice(["no", "yes"], 1000)
    query = "prediction=pred&target=y&scores=p_yes"
    register(client, CLASSIFIER, pa.table(table), query, version)


def _scrape(client: Any) -> dict[str, Any]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return {f.name: f for f in text_string_to_metric_families(r.text)}


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exposition]:
    app, client = _app(tmp_path_factory.mktemp("prometheus"))
    rng = np.random.default_rng(5)
    _classifier(client, rng)
    x = rng.normal(0, 1, 1000)
    table = {"x": x, "w": rng.normal(0, 1, 1000), "pred": 2 * x}
    table["y"] = 2 * x + rng.normal(0, 0.5, 1000)
    register(client, REGRESSOR, pa.table(table), "prediction=pred&target=y")
    monitor = {"name": "errors", "model": CLASSIFIER, "metric": "error_rate"}
    r = client.post("/v1/monitors", json=monitor | {"condition": "> 0.01", "severity": "critical"})
    assert r.status_code == 201, r.text
    start = (int(time.time()) // 3600 - HOURS - 1) * 3600
    for name in (CLASSIFIER, REGRESSOR):
        _send(client, name, rng, start)
    settle(app)
    try:
        r = client.get("/metrics")
        assert r.status_code == 200, r.text
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        samples = [s for f in families.values() for s in f.samples]
        yield Exposition(r.text, families, samples, client)
    finally:
        app.state.store.close()


def _value(exp: Exposition, name: str, **labels: str) -> float:
    values = [
        s.value
        for s in exp.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (name, labels, values)
    return float(values[0])


def _point(exp: Exposition, model: str, metric: str, window_start: float) -> float | None:
    r = exp.api.get(f"/v1/models/{model}/metrics", params={"metric": metric})
    assert r.status_code == 200, r.text
    [point] = [p for p in r.json()["points"] if p["window_start"] == window_start] or [None]
    return None if point is None else point["value"]


# ------------------------------------------------------------------------- naming rules
# what promtool's linter (client_golang's promlint) reports, as words of a name
_ABBREVIATED = r"s|ms|us|ns|sec|b|kb|mb|gb|tb|pb|m|h|d"
_NOT_BASE = r"(?:pico|nano|micro|milli|centi|deci|deca|hecto|kilo|mega|giga)\w+|minutes|hours|days"
_TYPES = r"counter|gauge|histogram|summary"


def test_the_exposition_follows_the_prometheus_naming_rules(exposition: Exposition) -> None:
    """The rules of promtool's linter and of the Prometheus naming guide, on every family."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition.text, re.M))
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", exposition.text, re.M))
    assert len(types) >= 30, types
    for name, kind in types.items():
        assert NAME.match(name) and helps.get(name), name  # snake case, no colon, a help text
        # _total names a counter and only a counter
        assert name.endswith("_total") == (kind == "counter"), (name, kind)
        words = name.split("_")
        for forbidden in (_ABBREVIATED, _NOT_BASE, _TYPES, "share|percent"):
            assert not any(re.fullmatch(forbidden, w) for w in words), (name, forbidden)
        if kind != "histogram":
            assert not re.search(r"_(bucket|count|sum)$", name), name
        else:
            assert name.endswith("_seconds"), name
    for family in exposition.families.values():
        for sample in family.samples:
            assert all(NAME.match(f"watchkeeper_{k}") for k in sample.labels), sample
            assert "quantile" not in sample.labels, family.name  # a summary's label
            assert "le" not in sample.labels or family.type == "histogram", family.name
            # no family tells its values apart by a free "metric" label (the mixed-units shape)
            assert "metric" not in sample.labels, family.name
        if family.name.endswith("_ratio"):
            assert all(0 <= s.value <= 1 for s in family.samples), family.name


def test_every_exported_family_has_one_unit_named_by_its_suffix() -> None:
    units: dict[str, set[str]] = {}
    for metric in CATALOGUE.values():
        for export in metric.exports:
            units.setdefault(export.name, set()).add(metric.unit)
    for family, unit in units.items():
        assert len(unit) == 1, (family, unit)  # one unit per family
        [u] = unit
        for known, suffix in UNIT_SUFFIXES.items():
            assert family.endswith(suffix) == (u == known), (family, u)
        assert NAME.match(family) and not family.endswith("_total"), family


# ------------------------------------------------------------------ labels lag, versions
def test_performance_is_exported_from_the_newest_labelled_window(exposition: Exposition) -> None:
    """The newest window has no labels: accuracy, roc_auc and r2 come from the window before,
    whose start shows how far labels lag."""
    for model, metrics in {
        CLASSIFIER: ("accuracy", "f1", "precision", "recall", "roc_auc"),
        REGRESSOR: ("mae", "rmse", "r2"),
    }.items():
        newest = _value(exposition, "watchkeeper_window_start_seconds", model=model)
        labelled = _value(exposition, "watchkeeper_performance_window_start_seconds", model=model)
        assert newest - labelled == 3600
        assert _point(exposition, model, "labels", newest) is None  # no labels there yet
        assert _value(exposition, "watchkeeper_performance_labels", model=model) == PER_HOUR
        for metric in metrics:
            family = CATALOGUE[metric].exports[0].name
            value = _value(exposition, family, model=model, version="v1")
            assert value == pytest.approx(_point(exposition, model, metric, labelled)), metric
        events = _value(exposition, "watchkeeper_window_events", model=model)
        assert events == _point(exposition, model, "count", newest) == PER_HOUR


def test_window_series_carry_the_version_of_their_window(exposition: Exposition) -> None:
    window_families = {e.name for m in CATALOGUE.values() for e in m.exports}
    window_families |= {
        "watchkeeper_window_start_seconds",
        "watchkeeper_performance_window_start_seconds",
    }
    for name in window_families:
        samples = exposition.families[name].samples
        assert samples, name
        assert {s.labels["version"] for s in samples} == {"v1"}, name
    percentiles = {
        s.labels["percentile"]
        for s in exposition.families["watchkeeper_window_latency_seconds"].samples
    }
    assert percentiles == {"50", "95", "99"}


def test_the_version_label_follows_the_champion(tmp_path: Path) -> None:
    """Window series carry the champion's version: v1's until v2 becomes champion, then v2's
    once v2 has windows; the prediction counters keep one series per version."""
    app, client = _app(tmp_path)
    try:
        rng = np.random.default_rng(8)
        _classifier(client, rng)
        start = (int(time.time()) // 3600 - 4) * 3600
        _send(client, CLASSIFIER, rng, start, hours=2, labelled=2)
        settle(app)
        accuracy = "watchkeeper_performance_accuracy_ratio"
        assert [s.labels["version"] for s in _scrape(client)[accuracy].samples] == ["v1"]
        _classifier(client, rng, "v2")  # the new champion
        _send(client, CLASSIFIER, rng, start + 7200, version="v2", hours=1, labelled=1)
        settle(app)
        families = _scrape(client)
        for name in {
            e.name for m in CATALOGUE.values() for e in m.exports if m.task != "regression"
        }:
            assert {s.labels["version"] for s in families[name].samples} == {"v2"}, name
        counted = {s.labels["version"] for s in families["watchkeeper_predictions"].samples}
        assert counted == {"v1", "v2"}
    finally:
        app.state.store.close()


def test_alerts_firing_per_model_and_severity(exposition: Exposition) -> None:
    firing = {
        (s.labels["model"], s.labels["severity"]): s.value
        for s in exposition.families["watchkeeper_alerts_firing"].samples
    }
    assert firing == {
        (CLASSIFIER, "critical"): 1,
        (CLASSIFIER, "warning"): 0,
        (REGRESSOR, "critical"): 0,
        (REGRESSOR, "warning"): 0,
    }


# ------------------------------------------------------------------------------ Grafana
_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_names(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """The metric names an expression selects, the label names each selector matches on, and
    the label names of its grouping clauses."""
    matched: dict[str, set[str]] = {}
    for name, body in _SELECTOR.findall(_STRING.sub('""', expr)):
        labels = {m.split("=")[0].rstrip("!~ ").strip() for m in body.split(",") if m.strip()}
        matched.setdefault(name, set()).update(labels)
    bare = _STRING.sub("", expr)
    grouping = {g.strip() for body in _GROUPING.findall(bare) for g in body.split(",")}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", _GROUPING.sub("", bare))
    names = {n for n in _IDENT.findall(bare) if n.lower() not in _KEYWORDS}
    return names, matched, grouping - {""}


def test_promql_names_reads_selectors_functions_and_groupings() -> None:
    expr = 'sum by (le, job) (rate(a_bucket{m=~"$m",v!="x{y}"}[5m])) / on(m) b - time() > 0.5'
    assert promql_names(expr) == ({"a_bucket", "b"}, {"a_bucket": {"m", "v"}}, {"le", "job", "m"})


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of the dashboard."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = [
        (f"panel {p['title']!r}", t["expr"]) for p in board["panels"] for t in p.get("targets", [])
    ]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            found = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"])
            assert found, var["query"]
            out.append((f"variable {var['name']}", found[1]))
    return out


def test_every_grafana_query_names_series_that_metrics_exports(exposition: Exposition) -> None:
    """Each metric a panel or variable selects is a series on ``/metrics`` with samples, and
    carries every label the query matches or groups on."""
    labels: dict[str, set[str]] = {}
    for s in exposition.samples:
        labels.setdefault(s.name, set()).update(s.labels)
    queries = _queries()
    assert len(queries) >= 20
    seen: set[str] = set()
    for where, expr in queries:
        names, matched, grouping = promql_names(expr)
        assert names, (where, expr)
        for name in names:
            assert name in labels, f"{where}: {name} is not on /metrics"
            assert matched.get(name, set()) <= labels[name], (where, name, labels[name])
        assert grouping <= set().union(*(labels[n] for n in names)), (where, grouping)
        seen |= names
    # the panels cover the alerts, the labelled performance and the version of every window
    assert {"watchkeeper_alerts_firing", "watchkeeper_performance_roc_auc_ratio"} <= seen
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert "version" in {v["name"] for v in board["templating"]["list"]}


def test_every_family_is_documented_with_its_type_and_labels(exposition: Exposition) -> None:
    """docs/service.md's Prometheus table names each family of ``/metrics`` with its type and
    labels, and names no family ``/metrics`` lacks."""
    service = (Path(__file__).parents[2] / "docs" / "service.md").read_text(encoding="utf-8")
    section = service.split("## Prometheus and Grafana", 1)[1].split("\n## ", 1)[0]
    table = section.split("| family | type | labels | what |", 1)[1].split("\n\n", 1)[0]
    documented: dict[str, tuple[str, set[str]]] = {}
    for row in table.splitlines()[2:]:
        names, kind, labels = (cell.strip() for cell in row.strip("|").split(" | ")[:3])
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = (kind, set() if labels == "—" else set(labels.split(", ")))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition.text, re.M))
    assert set(documented) == set(types)
    for name, family in exposition.families.items():
        full = name + "_total" if family.type == "counter" else name
        kind, expected = documented[full]
        assert kind == family.type, name
        carried = {k for s in family.samples for k in s.labels if k != "le"}
        assert carried == expected or not family.samples, (name, carried)  # no notifier here
