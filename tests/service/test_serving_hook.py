"""The hook routing will use: every answered request reaches the ``after_score`` functions of
the served-model registry, and one that fails never fails the champion's answer (in process,
on a real SQLite store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.ingest.service import IngestService
from watchkeeper.serving.artifacts import attach
from watchkeeper.serving.predict import score
from watchkeeper.serving.registry import ScoredRequest, ServedModels
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

sio = pytest.importorskip("skops.io", reason="the serve extra: pip install -e '.[dev]'")


def test_after_score_hooks_see_each_request_and_cannot_fail_it(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (100, 2))
    y = np.where(x[:, 0] > 0, "yes", "no")
    model = LogisticRegression().fit(x, y)
    settings = load_settings(environ={}, data_dir=str(tmp_path))
    store = Store(settings.sqlalchemy_url)
    try:
        reference = pa.table({"a": x[:, 0], "b": x[:, 1], "label": y, "pred": y})
        IngestService(store, settings).register("m", reference, target="label", prediction="pred")
        attach(store, settings, "m", "v1", data=sio.dumps(model), fmt="skops")
        served = ServedModels(store, settings)
        seen: list[ScoredRequest] = []

        def broken(_: Any) -> None:
            raise RuntimeError("a challenger that cannot score")

        served.after_score += [broken, seen.append]
        columns = {"a": [0.5, -1.0], "b": [0.1, 0.2]}
        answer = score(served, "m", columns, prediction_ids=["p1", "p2"])
        assert answer.predictions == model.predict(np.array([[0.5, 0.1], [-1.0, 0.2]])).tolist()
        (request,) = seen
        assert (request.model, request.version, request.prediction_ids) == ("m", "v1", ["p1", "p2"])
        assert request.columns == columns and request.predictions == answer.predictions
        assert served.loaded_versions() == [("m", "v1")]
        assert store.counters("m")["events_total"] == 2
    finally:
        store.close()
