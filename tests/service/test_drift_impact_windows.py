"""Each window's drift impact in the service, on SQLite and PostgreSQL: a fitted ``Reference``
registered with its model carries its attribution shares; the evaluated window's drifted
features are ranked by drift effect size × share (the window's own drift points and the
reference's shares are the oracle), so the feature the model relies on comes before one that
drifted more but that the model ignores; a version without shares has no ranking."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

import watchkeeper as wk
from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")

HOUR = 3600
T0 = 1_714_554_000.0


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    """x1 carries the model, x2 a little; z drifts three times as far but the model ignores it."""
    return {
        "x1": rng.normal(shift, 1, n),
        "x2": rng.normal(0, 1, n),
        "z": rng.normal(3 * shift, 1, n),
    }


def fitted_reference() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    data = pd.DataFrame(frame(rng, 1500))
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(
        data[["x1", "x2", "z"]], 3 * data.x1 + 0.5 * data.x2 + rng.normal(0, 0.1, len(data))
    )
    data["pred"] = model.predict(data[["x1", "x2", "z"]])
    return wk.Reference.fit(data, prediction="pred", model=model), model


def send(service: IngestService, model: Any, hour: int, n: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    columns = frame(rng, n, shift)
    import pandas as pd

    pred = model.predict(pd.DataFrame(columns))
    table = pa.table(
        {
            "prediction_id": [f"h{hour}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            **columns,
            "pred": pred,
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream").accepted == n
    Processor(service.store, service.settings).run_once()


def test_a_windows_drifted_features_are_ranked_by_drift_times_attribution_share(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    ref, model = fitted_reference()
    service.register("m", ref, window_seconds=HOUR)
    kept = store.reference_attributions("m", "v1")
    assert kept is not None and kept["source"] == "model" and kept["method"] == "shap_tree"
    assert kept["shares"] == pytest.approx(ref.attributions.shares, abs=1e-12)
    assert kept["shares"]["x1"] > 0.7 and kept["shares"]["z"] < 0.05

    send(service, model, 0, 1500, 0.0, seed=1)
    send(service, model, 1, 1500, 0.6, seed=2)
    assert Evaluator(store, settings.lake_dir).run_once(now=T0 + 3 * HOUR) == 2

    summary = {int(p["window_start"]): p["detail"] for p in series(store, "m", "drifted_share")}
    drift = {p["feature"]: p["detail"] for p in store_points(store, "drift_statistic", T0 + HOUR)}
    impact = summary[int(T0 + HOUR)]["drift_impact"]
    drifted = {f: d["effect_size"] for f, d in drift.items() if d["drifted"]}
    assert set(drifted) == {"x1", "z"}  # x2 did not move
    assert drifted["z"] > drifted["x1"]  # z drifted further ...
    assert [r["feature"] for r in impact] == ["x1", "z"]  # ... but x1 matters to the model
    for r in impact:
        share = ref.attributions.shares[r["feature"]]
        assert r["attribution_share"] == pytest.approx(share, abs=1e-12)
        assert r["effect_size"] == pytest.approx(drifted[r["feature"]], abs=1e-12)
        assert r["impact"] == pytest.approx(drifted[r["feature"]] * share, abs=1e-12)
    assert impact[0]["message"].startswith("x1 drifted and carries")
    assert summary[int(T0)].get("drift_impact") == []  # nothing drifted: nothing to rank

    # the model card's attributions section: the shares, largest first
    from watchkeeper.card import model_card, to_markdown

    card = model_card(store, "m", "v1")
    section = card["attributions"]
    assert section["method"] == "shap_tree" and section["approximate"] is False
    expected = sorted(ref.attributions.shares.items(), key=lambda kv: -kv[1])
    assert [(f["feature"], f["share"]) for f in section["features"]] == [
        (f, pytest.approx(v, abs=1e-12)) for f, v in expected
    ]
    text = to_markdown(card)
    assert "shap_tree" in text and "not computed" not in text.split("Attributions", 1)[1][:200]


def store_points(store: Store, metric: str, window: float) -> list[dict[str, Any]]:
    return [
        {"feature": f, **p}
        for f in ("x1", "x2", "z")
        for p in series(store, "m", metric, feature=f)
        if p["window_start"] == window
    ]


def test_a_version_without_attribution_shares_has_no_drift_impact(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    ref, model = fitted_reference()
    service.register("m", ref.table, prediction="pred", window_seconds=HOUR)  # a plain table
    assert store.reference_attributions("m", "v1") is None
    send(service, model, 0, 1500, 0.6, seed=2)
    assert Evaluator(store, settings.lake_dir).run_once(now=T0 + 2 * HOUR) == 1
    (point,) = series(store, "m", "drifted_share")
    assert point["detail"]["drifted"] >= 1 and "drift_impact" not in point["detail"]
