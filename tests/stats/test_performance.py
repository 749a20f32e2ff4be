"""detect_task, the performance re-exports and the runnable docstring examples."""

from __future__ import annotations

import doctest
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from watchkeeper.errors import InputError
from watchkeeper.stats import classification, performance, regression
from watchkeeper.stats.performance import (
    ClassificationAggregate,
    RegressionAggregate,
    detect_task,
)


@pytest.mark.parametrize("module", [classification, regression, performance])
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_reexports() -> None:
    assert ClassificationAggregate is classification.ClassificationAggregate
    assert RegressionAggregate is regression.RegressionAggregate


rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "scores", "task"),
    [
        (rng.integers(0, 2, 50), rng.integers(0, 2, 50), None, "binary"),
        (rng.integers(0, 2, 50).astype(bool), rng.integers(0, 2, 50), None, "binary"),
        (np.array(["a", "b"] * 5), np.array(["a"] * 10), None, "binary"),
        (np.array(["a", "b", "c"]), np.array(["a", "a", "a"]), None, "multiclass"),
        (rng.integers(0, 5, 50).astype(float), rng.integers(0, 5, 50), None, "multiclass"),
        (np.array([0.0, 1.0, np.nan]), np.array([1.0, None, 0.0], dtype=object), None, "binary"),
        (rng.normal(size=50), rng.normal(size=50), None, "regression"),
        (rng.integers(0, 2, 50), rng.random(50), None, "regression"),  # continuous predictions
        (rng.integers(0, 1000, 50), rng.integers(0, 1000, 50), None, "regression"),  # counts
        (np.array([0, 1]), np.array([1, 1]), np.array([0.2, 0.9]), "binary"),
        (np.array([0, 1]), np.array([1, 1]), np.full((2, 3), 1 / 3), "multiclass"),
        (rng.integers(0, 30, 50), rng.integers(0, 30, 50), rng.random(50), "multiclass"),
        (np.array([], dtype=float), np.array([], dtype=float), None, "binary"),
    ],
)
def test_detect_task(y_true: np.ndarray, y_pred: np.ndarray, scores: Any, task: str) -> None:
    assert detect_task(y_true, y_pred, scores) == task


def test_detect_task_max_classes_and_errors() -> None:
    y = np.arange(30) % 25
    assert detect_task(y, y) == "regression"
    assert detect_task(y, y, max_classes=30) == "multiclass"
    with pytest.raises(InputError, match="1-D"):
        detect_task(np.zeros((2, 2)), np.zeros((2, 2)))
