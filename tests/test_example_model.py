"""The example churn model and its training script (``python -m watchkeeper.example_model``):
accurate on held-out data of its own distribution, and worth retraining after the world
changes. Accuracy is scikit-learn's ``accuracy_score``."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper.errors import InputError
from watchkeeper.examples import _frame

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from sklearn.metrics import accuracy_score, roc_auc_score

from watchkeeper import example_model

T0 = datetime(2026, 10, 1)


def frame(seed: int, n: int, *, changed: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    return _frame(rng, n, T0, drifted=changed, concept=4.0 if changed else 0.0, first_id=0)


def accuracy(model: object, table: pa.Table) -> float:
    predicted = model.predict(example_model.features(table))  # type: ignore[attr-defined]
    return float(accuracy_score(example_model.target(table), predicted))


def test_the_model_is_accurate_on_held_out_data() -> None:
    model = example_model.train(frame(1, 20_000, changed=False))
    held_out = frame(2, 5_000, changed=False)
    y = example_model.target(held_out)
    # churn is rare before the change (15 %): accuracy is at least the majority class's, and
    # the scores rank churners first about as well as the true churn probabilities do
    assert accuracy(model, held_out) >= max(y.mean(), 1 - y.mean())
    scores = model.predict_proba(example_model.features(held_out))[:, 1]
    truth = held_out.column("churn_score").to_numpy()  # the true churn probability here
    assert roc_auc_score(y, scores) > roc_auc_score(y, truth) - 0.02


def test_retraining_after_the_change_beats_the_old_model_on_the_new_world() -> None:
    old = example_model.train(frame(1, 20_000, changed=False))
    new = example_model.train(frame(3, 800, changed=True))  # one window of the new world
    after = frame(4, 5_000, changed=True)
    assert accuracy(new, after) > accuracy(old, after) + 0.15
    # the drift brings a plan never seen in training: ignored, not an error
    assert "family" in after.column("plan").to_pylist()


def test_the_script_trains_on_an_exported_window_and_writes_a_skops_model(
    tmp_path: Path,
) -> None:
    import skops.io as sio

    window = frame(5, 600, changed=True)
    names = [*example_model.FEATURES, "churn_predicted", "churned", "customer_id"]
    exported = window.select(names).rename_columns(
        [*example_model.FEATURES, "prediction", "label", "prediction_id"]
    )
    # as the lake keeps them: a boolean as "true"/"false", a few-valued count as text
    for name in ("is_active", "num_products"):
        i = exported.column_names.index(name)
        exported = exported.set_column(i, name, exported.column(name).cast(pa.string()))
    assert exported.column("is_active").to_pylist()[:2] in (
        ["true", "false"],
        ["false", "true"],
        ["true", "true"],
        ["false", "false"],
    )
    dataset, output = tmp_path / "job-1.parquet", tmp_path / "job-1.model"
    pq.write_table(exported, dataset)
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper.example_model", str(dataset), str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "trained on 600 rows" in done.stdout
    data = output.read_bytes()
    assert sio.get_untrusted_types(data=data) == []
    model = sio.loads(data)
    held_out = frame(6, 2_000, changed=True)
    # served, is_active arrives as "true", as the lake keeps it: one spelling throughout
    assert accuracy(model, held_out) == pytest.approx(
        accuracy(example_model.train(window), held_out)
    )
    assert accuracy(model, held_out) > 0.75


def test_a_table_without_the_features_or_a_target_is_refused_by_name(tmp_path: Path) -> None:
    table = frame(7, 50, changed=False)
    with pytest.raises(InputError, match=r"no column\(s\) \['plan'\]"):
        example_model.train(table.drop_columns(["plan"]))
    with pytest.raises(InputError, match="no target column"):
        example_model.train(table.drop_columns(["churned"]))
    dataset = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), dataset)
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper.example_model", str(dataset), str(tmp_path / "m")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "one class only (0 rows)" in done.stderr
