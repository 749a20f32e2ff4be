"""Each labelled window's failing slices, on SQLite and PostgreSQL: a slice planted in one
window (country=DE with income ≥ 80k wrong four times as often) is found first and kept in
``wk_window_slices``; what is kept is the library's search (:func:`watchkeeper.slices.
failing_slices`) on the same rows against the same reference profile; a window without a
failing slice keeps an empty list; late labels replace the window's slices, late events
without labels keep them unread; a segment's
window gets none; ``GET /v1/models/{model}/slices`` answers them and 404 names what is
missing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from watchkeeper.evaluation.evaluate import Evaluator
from watchkeeper.evaluation.window_drift import ALPHA
from watchkeeper.evaluation.window_slices import read_slices, sentence, slice_windows
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.slices import DEFAULTS, failing_slices
from watchkeeper.store.state import NotFoundError, Store

HOUR = 3600
T0 = 1_714_554_000.0


def draw(rng: np.random.Generator, n: int, planted: bool) -> dict[str, Any]:
    country = rng.choice(["DE", "FR", "US"], n)
    income = rng.uniform(0, 100_000, n)
    y = rng.choice(["no", "yes"], n)
    bad = (country == "DE") & (income >= 80_000) if planted else np.zeros(n, dtype=bool)
    wrong = rng.random(n) < np.where(bad, 0.45, 0.1)
    p = np.where(wrong, np.where(y == "yes", "no", "yes"), y)
    return {"country": country, "income": income, "y": y, "p": p}


def setup(store: Store, tmp_path: Path) -> tuple[IngestService, Evaluator]:
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    reference = pa.table(draw(np.random.default_rng(0), 5000, planted=False))
    service.register("m", reference, target="y", prediction="p", window_seconds=HOUR)
    return service, Evaluator(store, settings.lake_dir)


def send(service: IngestService, hour: int, n: int, planted: bool, seed: int) -> pa.Table:
    """A window's events (without their labels, which come apart) and the whole rows."""
    rng = np.random.default_rng(seed)
    rows = pa.table(
        {
            "prediction_id": [f"h{hour}-s{seed}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            **draw(rng, n, planted),
        }
    )
    events = rows.drop_columns(["y"])
    sink = io.BytesIO()
    with ipc.new_stream(sink, events.schema) as writer:
        writer.write_table(events)
    assert service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream").accepted == n
    Processor(service.store, service.settings).run_once()
    return rows


def label(service: IngestService, rows: pa.Table) -> None:
    items = [
        {"prediction_id": i, "label": y}
        for i, y in zip(rows["prediction_id"].to_pylist(), rows["y"].to_pylist(), strict=True)
    ]
    result = service.actuals("m", json.dumps({"actuals": items}).encode())
    assert result["matched"] == rows.num_rows


def oracle(store: Store, rows: pa.Table) -> dict[str, Any]:
    """The library's failing slices of the same rows against the version's reference profile."""
    _, reference = store.reference("m", "v1")
    found = failing_slices(reference, rows, "y", "p", "classification", dict(DEFAULTS), ALPHA)
    return json.loads(json.dumps(found.to_dict()))


def test_a_planted_slice_is_found_first_and_kept_as_the_library_finds_it(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service, evaluator = setup(store, tmp_path)
    calm = send(service, 0, 3000, planted=False, seed=1)
    planted = send(service, 1, 3000, planted=True, seed=2)
    assert evaluator.run_once(now=T0 + 3 * HOUR) == 2
    assert slice_windows(store, "m") == [], "slices before any label"
    label(service, calm)
    label(service, planted)
    assert evaluator.run_once(now=T0 + 3 * HOUR) == 2

    kept = read_slices(store, "m")  # the newest labelled window
    assert kept["window_start"] == T0 + HOUR and kept["labels"] == 3000
    result = kept["result"]
    assert result == oracle(store, planted)
    first = result["slices"][0]
    assert first["description"] == "country=DE, income ≥ 80k"
    assert first["n"] == sum(
        c == "DE" and i >= 80_000
        for c, i in zip(planted["country"].to_pylist(), planted["income"].to_pylist(), strict=True)
    )
    assert result["rows"] == 3000
    assert sentence(result) == (
        f"accuracy is worst in country=DE, income ≥ 80k: {first['slice']['value']:.3g} vs "
        f"{first['rest']['value']:.3g} elsewhere, n = {first['n']:,}"
    )
    old = read_slices(store, "m", window=int(T0))
    assert old["result"] == oracle(store, calm) and old["result"]["slices"] == []
    windows = slice_windows(store, "m", "v1")
    assert [w["window_start"] for w in windows] == [T0 + HOUR, T0]
    assert [w["reported"] for w in windows] == [len(result["slices"]), 0]


def test_late_labels_replace_the_windows_slices(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service, evaluator = setup(store, tmp_path)
    rows = send(service, 0, 3000, planted=True, seed=3)
    label(service, rows.slice(0, 200))
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1
    few = read_slices(store, "m")
    assert few["labels"] == 200 and few["result"] == oracle(store, rows.slice(0, 200))
    label(service, rows.slice(200))
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1
    kept = read_slices(store, "m")
    assert kept["labels"] == 3000 and kept["result"] == oracle(store, rows)
    assert kept["result"]["slices"][0]["description"] == "country=DE, income ≥ 80k"
    assert evaluator.slices is not None and evaluator.slices.windows_read == 2
    send(service, 0, 100, planted=False, seed=4)  # late events, no new label
    assert evaluator.run_once(now=T0 + 2 * HOUR) == 1
    assert evaluator.slices.windows_read == 2, "the same labelled rows were read again"
    assert read_slices(store, "m")["result"] == kept["result"]


def test_unknown_names_are_not_found_naming_them(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    setup(store, tmp_path)
    with pytest.raises(NotFoundError, match="'nope'"):
        read_slices(store, "nope")
    with pytest.raises(NotFoundError, match="'v9'"):
        read_slices(store, "m", version="v9")
    with pytest.raises(NotFoundError, match="no labelled window"):
        read_slices(store, "m")
