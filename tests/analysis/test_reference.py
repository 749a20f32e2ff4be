"""A fitted Reference gives exactly the Report of ``compare()``, saved and loaded or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import watchkeeper
from watchkeeper import InputError, Reference


def _frame(n: int, seed: int, shift: float = 0.0, *, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    df = pd.DataFrame(
        {
            "x": x,
            "z": rng.exponential(1 + shift, n),
            "k": rng.integers(0, 5, n),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "ts": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86400, n)), unit="s"),
        }
    )
    df.loc[rng.random(n) < 0.05, "z"] = np.nan
    df.loc[rng.random(n) < 0.1 + shift / 4, "c"] = None
    if task == "binary":
        df["y"] = (x + rng.normal(0, 1, n) > 0).astype(int)
        df["p"] = (x > 0).astype(int)
        df["s"] = 1 / (1 + np.exp(-x))
    elif task == "regression":
        df["y"] = 2 * x + rng.normal(0, 1, n)
        df["p"] = 2 * x
    return df


CASES: dict[str, tuple[int, dict[str, Any]]] = {
    "binary_timestamp": (0, {"target": "y", "prediction": "p", "scores": "s", "timestamp": "ts"}),
    "regression": (1, {"target": "y", "prediction": "p", "reference_chunks": 6}),
    "unlabelled": (2, {"method": "psi", "columns": ["x", "z", "c"]}),
    "p_value": (3, {"decision": "p_value", "timestamp": "ts"}),
    "threshold": (4, {"decision": "threshold", "thresholds": {"ks": 0.05}}),
}


def _same(a: watchkeeper.Report, b: watchkeeper.Report) -> None:
    left, right = a.to_dict(), b.to_dict()
    left.pop("created_at"), right.pop("created_at")
    assert left == right


@pytest.mark.parametrize("case", sorted(CASES))
def test_fitted_reference_compares_like_compare(case: str, tmp_path: Path) -> None:
    seed, options = CASES[case]
    task = "regression" if case == "regression" else "none" if case == "unlabelled" else "binary"
    ref_df = _frame(8000, seed, task=task)
    ref = Reference.fit(ref_df, **options)
    loaded = Reference.load(ref.save(tmp_path / "ref"))
    for i, (n, shift) in enumerate([(1500, 0.0), (800, 0.4), (1500, 0.1)]):
        cur = _frame(n, 100 + seed + i, shift, task=task)
        expected = watchkeeper.compare(ref_df, cur, **options)
        _same(ref.compare(cur), expected)
        _same(loaded.compare(cur), expected)


def test_a_current_without_labels_still_matches() -> None:
    ref_df = _frame(5000, 7)
    options: dict[str, Any] = {"target": "y", "prediction": "p", "timestamp": "ts"}
    cur = _frame(1000, 8, 0.3).drop(columns=["y"])
    _same(
        Reference.fit(ref_df, **options).compare(cur), watchkeeper.compare(ref_df, cur, **options)
    )


def test_the_reference_chunks_and_calibrations_are_reused() -> None:
    ref = Reference.fit(_frame(8000, 9), timestamp="ts")
    ref.compare(_frame(1000, 10))
    chunks, cached = dict(ref._chunks), len(ref.noise_cache)
    # another window of the same size, and the same counts of values: nothing to simulate
    ref.compare(_frame(1000, 10).assign(x=lambda d: d["x"] + 1))
    assert ref._chunks.keys() == chunks.keys() and len(ref.noise_cache) == cached
    assert len(chunks[8]) == 8  # 8,000 rows against windows of 1,000


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    ref_df = _frame(500, 1)
    with pytest.raises(InputError, match="'nope'"):
        Reference.fit(ref_df, target="nope")
    with pytest.raises(InputError, match="false_alarm_rate"):
        Reference.fit(ref_df, false_alarm_rate=2)
    with pytest.raises(InputError, match="reference_chunks"):
        Reference.fit(ref_df, reference_chunks=1)
    with pytest.raises(InputError, match="method"):
        Reference.fit(ref_df, method="nope")
    with pytest.raises(InputError, match="not a saved watchkeeper reference"):
        Reference.load(tmp_path)


def test_the_kept_reference_performance_matches_as_classes_change() -> None:
    """Multiclass string labels; a window brings a class the reference never saw, the next
    does not: the reference's metrics, kept per class list, are those compare() computes."""
    rng = np.random.default_rng(5)

    def frame(n: int, classes: list[str]) -> pd.DataFrame:
        y = rng.choice(classes, n)
        p = np.where(rng.random(n) < 0.7, y, rng.choice(classes, n))
        return pd.DataFrame({"x": rng.normal(size=n), "y": y, "p": p})

    ref_df = frame(4000, ["a", "b", "c"])
    options: dict[str, Any] = {"target": "y", "prediction": "p"}
    ref = Reference.fit(ref_df, **options)
    for cur in (frame(500, ["a", "b"]), frame(500, ["a", "b", "c", "d"]), frame(500, ["c"])):
        _same(ref.compare(cur), watchkeeper.compare(ref_df, cur, **options))
    reg = _frame(3000, 6, task="regression")
    fitted = Reference.fit(reg, target="y", prediction="p")
    for seed in (7, 8):
        cur = _frame(700, seed, 0.3, task="regression")
        _same(fitted.compare(cur), watchkeeper.compare(reg, cur, target="y", prediction="p"))
