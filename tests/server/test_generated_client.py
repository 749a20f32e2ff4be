"""A client generated from the running server's ``/openapi.json`` (openapi-python-client)
talks to that server: registration, every ingest form it can send, labels, status, series,
quarantine, monitors, silences, alerts, and the error body as a typed model."""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

PACKAGE = "wk_api_client"
CONFIG = """\
project_name_override: wk-api-client
package_name_override: wk_api_client
post_hooks: []
content_type_overrides:
  application/vnd.apache.parquet: application/octet-stream
  application/cloudevents+json: application/json
"""


def _generator() -> list[str]:
    beside = Path(sys.executable).with_name("openapi-python-client")
    found = str(beside) if beside.is_file() else shutil.which("openapi-python-client")
    assert found, "openapi-python-client is not installed (pip install -e '.[dev]')"
    return [found]


def _import_unset(api_dir: Path) -> None:
    """openapi-python-client 0.29 annotates a body of several content types ``... | Unset``
    without importing ``Unset`` (openapi-generators/openapi-python-client#1451): add it."""
    for path in api_dir.rglob("*.py"):
        text = path.read_text()
        if "| Unset" in text and "UNSET, Unset" not in text:
            text = text.replace(
                "from ...types import Response, UNSET",
                "from ...types import Response, UNSET, Unset",
                1,
            )
            path.write_text(text)


@pytest.fixture(scope="module")
def generated(api: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package, generated from the server's document (not from the source)."""
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_bytes(httpx.get(f"{api.url}/openapi.json", timeout=30).content)
    (out / "config.yaml").write_text(CONFIG)
    run = subprocess.run(
        [
            *_generator(),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(out / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Arrow and CSV bodies are not in its vocabulary: those routes keep their JSON/Parquet forms
    problems = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if "Unable to" in line or "Cannot parse" in line or "Failure" in line
    ]
    assert not problems, run.stdout + run.stderr
    _import_unset(out / PACKAGE / "api")
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


class _Tag:
    """The generated operations of one tag: ``_api("models").healthz`` is its module."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __getattr__(self, operation: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{self.tag}.{operation}")


def _api(tag: str) -> Any:
    return _Tag(tag)


@pytest.fixture
def client(generated: ModuleType, api: Any) -> Iterator[Any]:
    """The generated ``Client`` on the server; unexpected statuses raise."""
    with generated.Client(base_url=api.url, raise_on_unexpected_status=True) as c:
        yield c


def test_the_generated_client_registers_ingests_and_reads(
    client: Any, reference: Any, make_events: Any, wait_for: Any
) -> None:
    m = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    models, ingest = _api("models"), _api("ingest")

    assert models.healthz.sync(client=client).status == "ok"
    buf = io.BytesIO()
    pq.write_table(reference, buf)
    reg = models.register.sync(
        "gen",
        "v1",
        client=client,
        body=types.File(payload=io.BytesIO(buf.getvalue()), mime_type="application/octet-stream"),
        prediction="pred",
        segments="region",
        ignore="income",
    )
    assert isinstance(reg, m.Registered) and reg.reference_rows == reference.num_rows
    roles = {c.name: (c.role, c.reason) for c in reg.roles}
    assert roles["income"] == ("ignored", "given in ignore") and roles["pred"][0] == "prediction"
    assert "gen" in models.list_models.sync(client=client).models

    ids = [f"g{i}" for i in range(30)]
    rows = m.PredictionRows.from_dict({"events": make_events(ids[:10])})
    got = ingest.predictions.sync("gen", client=client, body=rows)
    assert isinstance(got, m.IngestResponse) and got.accepted == 10 and got.errors == []
    events = make_events(ids[10:20])
    columns = m.PredictionColumns.from_dict(
        {
            "prediction_id": [e["prediction_id"] for e in events],
            "timestamp": [e["timestamp"] for e in events],
            "features": {k: [e["features"][k] for e in events] for k in events[0]["features"]},
            "prediction": [e["prediction"] for e in events],
        }
    )
    assert ingest.predictions.sync("gen", client=client, body=columns).accepted == 10
    flat = [
        {**{k: v for k, v in e.items() if k != "features"}, **e["features"]}
        for e in make_events(ids[20:])
    ]
    table = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(flat), table)
    parquet = types.File(payload=io.BytesIO(table.getvalue()), mime_type="application/octet-stream")
    assert ingest.predictions.sync("gen", client=client, body=parquet).accepted == 10

    labels = m.ActualsBody.from_dict(
        {"actuals": [{"prediction_id": i, "label": "yes"} for i in ids]}
    )
    done = ingest.actuals.sync("gen", client=client, body=labels)
    assert isinstance(done, m.ActualsResponse)
    assert done.matched + done.unmatched == 30 and done.rejected == 0

    def processed() -> bool:
        status = models.model_status.sync("gen", client=client)
        return bool(status.events_total == 30 and status.events_pending == 0)

    wait_for(processed, "the 30 events to be processed")
    status = models.model_status.sync("gen", client=client)
    assert isinstance(status, m.ModelStatus)
    assert status.champion == "v1" and [v.version for v in status.versions] == ["v1"]
    series = models.metric_series.sync("gen", client=client, metric="count")
    assert isinstance(series, m.MetricSeries) and series.metric == "count"
    assert models.quarantine.sync("gen", client=client, limit=5).items == []


def test_the_generated_client_manages_monitors_silences_and_alerts(client: Any, api: Any) -> None:
    m = importlib.import_module(f"{PACKAGE}.models")
    alerts = _api("alerts")
    spec = m.MonitorSpec(name="gen-acc", model=api.model, metric="accuracy", condition="<= 0.5")
    made = alerts.add_monitor.sync(client=client, body=spec)
    assert isinstance(made, m.MonitorOut) and made.source == "api" and made.kind == "condition"
    assert "gen-acc" in [x.name for x in alerts.list_monitors.sync(client=client).monitors]
    assert alerts.get_monitor.sync("gen-acc", client=client).spec["condition"] == "<= 0.5"
    assert alerts.delete_monitor.sync_detailed("gen-acc", client=client).status_code == 204

    silence = alerts.add_silence.sync(
        client=client,
        body=m.SilenceIn.from_dict({"matchers": {"model": api.model}, "duration": "1h"}),
    )
    assert isinstance(silence, m.Silence) and silence.active
    listed = alerts.list_silences.sync(client=client, active=True).silences
    assert silence.id in [s.id for s in listed]
    assert alerts.end_silence.sync(silence.id, client=client).active is False
    assert isinstance(alerts.list_alerts.sync(client=client, state="open"), m.AlertList)


def test_the_generated_client_reads_errors_as_the_error_body(client: Any) -> None:
    m = importlib.import_module(f"{PACKAGE}.models")
    missing = _api("models").model_status.sync_detailed("no-such-model", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, m.ErrorBody)
    assert missing.parsed.error.type_ == "NotFoundError" and missing.parsed.error.status == 404
    bad = _api("alerts").list_alerts.sync_detailed(client=client, limit=-1)
    assert bad.status_code == 422 and isinstance(bad.parsed, m.ErrorBody)
    assert "query.limit" in bad.parsed.error.message
