"""Folding labelled predictions into a window's performance: scikit-learn oracles, merge
order, the scored aggregate of a binary target, and class handling."""

from __future__ import annotations

import doctest
from typing import Any

import numpy as np
import pytest

from watchkeeper.stats import labelled as labelled_module
from watchkeeper.stats.classification import ClassificationAggregate
from watchkeeper.stats.labelled import Labelled, binary_classes, fold_labelled
from watchkeeper.stats.regression import RegressionAggregate

sk = pytest.importorskip("sklearn.metrics")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(labelled_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def fold_in_chunks(
    task: str, items: list[Labelled], chunks: int, classes: list[str] | None = None
) -> dict[str, Any]:
    agg = None
    for part in np.array_split(np.arange(len(items)), chunks):
        agg = fold_labelled(task, agg, [items[i] for i in part], classes)
    assert agg is not None
    return agg


def binary_items(n: int, seed: int) -> tuple[list[Labelled], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    pred = (score > 0.5).astype(int)
    names = np.array(["no", "yes"])
    items: list[Labelled] = [
        (str(names[p]), str(names[t]), float(s)) for p, t, s in zip(pred, y, score, strict=True)
    ]
    return items, y, pred, score


@pytest.mark.parametrize("chunks", [1, 3, 17])
def test_classification_matches_sklearn_however_the_labels_arrive(chunks: int) -> None:
    items, y, pred, score = binary_items(600, seed=chunks)
    agg = fold_in_chunks("classification", items, chunks, classes=["no", "yes"])
    m = ClassificationAggregate.from_dict(agg["aggregate"]).metrics(n_bootstrap=0)
    assert m["accuracy"]["value"] == pytest.approx(sk.accuracy_score(y, pred), abs=1e-12)
    assert m["f1"]["value"] == pytest.approx(sk.f1_score(y, pred), abs=1e-12)
    assert m["precision"]["value"] == pytest.approx(sk.precision_score(y, pred), abs=1e-12)
    assert m["recall"]["value"] == pytest.approx(sk.recall_score(y, pred), abs=1e-12)
    scored = ClassificationAggregate.from_dict(agg["scored"]).metrics(n_bootstrap=0)
    bound = scored["roc_auc_error_bound"]
    assert abs(scored["roc_auc"]["value"] - sk.roc_auc_score(y, score)) <= bound + 1e-12


def test_multiclass_matches_sklearn_and_keeps_no_scored_aggregate() -> None:
    rng = np.random.default_rng(5)
    y = rng.choice(["a", "b", "c"], 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.choice(["a", "b", "c"], 300))
    items: list[Labelled] = [(str(p), str(t), 0.5) for p, t in zip(pred, y, strict=True)]
    agg = fold_in_chunks("classification", items, 4, classes=None)
    assert "scored" not in agg
    m = ClassificationAggregate.from_dict(agg["aggregate"]).metrics(n_bootstrap=0)
    assert m["accuracy"]["value"] == pytest.approx(sk.accuracy_score(y, pred), abs=1e-12)
    assert m["f1"]["value"] == pytest.approx(sk.f1_score(y, pred, average="macro"), abs=1e-12)


@pytest.mark.parametrize("chunks", [1, 5])
def test_regression_matches_sklearn_and_unparsable_values_are_skipped(chunks: int) -> None:
    rng = np.random.default_rng(chunks)
    y = rng.normal(10, 3, 400)
    p = y + rng.normal(0, 1, 400)
    items: list[Labelled] = [
        (str(float(a)), str(float(b)), None) for a, b in zip(p, y, strict=True)
    ]
    items += [("n/a", "1.0", None), (None, "2.0", None)]  # no number: skipped, not an error
    agg = fold_in_chunks("regression", items, chunks)
    reg = RegressionAggregate.from_dict(agg["aggregate"])
    m = reg.metrics()
    assert reg.n == 400 and reg.skipped_rows == 2
    assert m["mae"]["value"] == pytest.approx(sk.mean_absolute_error(y, p), rel=1e-9)
    assert m["r2"]["value"] == pytest.approx(sk.r2_score(y, p), rel=1e-9)


def test_only_valid_scores_of_the_two_classes_enter_the_scored_aggregate() -> None:
    items: list[Labelled] = [
        ("yes", "yes", 0.9),
        ("no", "no", 0.1),
        ("yes", "no", None),  # no score
        ("yes", "no", float("nan")),
        ("no", "yes", 1.5),  # not a probability
        ("maybe", "yes", 0.7),  # a prediction outside the two classes
    ]
    agg = fold_labelled("classification", None, items, classes=["no", "yes"])
    assert ClassificationAggregate.from_dict(agg["aggregate"]).n == 6
    assert ClassificationAggregate.from_dict(agg["scored"]).n == 2
    # no scored item yet: no scored aggregate; an old one is kept when none comes
    none_scored = fold_labelled("classification", None, items[2:], classes=["no", "yes"])
    assert "scored" not in none_scored
    kept = fold_labelled("classification", agg, items[2:3], classes=["no", "yes"])
    assert kept["scored"] == agg["scored"]


def test_a_scored_aggregate_of_other_classes_is_replaced() -> None:
    old = fold_labelled("classification", None, [("a", "a", 0.8)], classes=["a", "b"])
    new = fold_labelled("classification", old, [("yes", "no", 0.3)], classes=["no", "yes"])
    assert ClassificationAggregate.from_dict(new["scored"]).n == 1
    assert ClassificationAggregate.from_dict(new["aggregate"]).n == 2


def test_binary_classes_order_and_non_binary_targets() -> None:
    assert binary_classes(["yes", "no"]) == ["no", "yes"]
    assert binary_classes([1, 0]) == ["0", "1"]
    assert binary_classes(["10", "9"]) == ["9", "10"]  # numeric order, positive class last
    assert binary_classes(["a", "b", "c"]) is None
    assert binary_classes(None) is None


def test_an_unknown_task_is_named() -> None:
    with pytest.raises(ValueError, match="task 'ranking': use one of classification, regression"):
        fold_labelled("ranking", None, [])
