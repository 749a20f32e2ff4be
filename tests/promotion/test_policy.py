"""The promotion policy: defaults, and a bad value refused naming its field."""

from __future__ import annotations

import re

import pytest

from watchkeeper.errors import InputError
from watchkeeper.promotion.policy import Policy


def test_defaults_round_trip() -> None:
    policy = Policy.from_dict({})
    assert policy.to_dict() == {
        "min_labelled": 200,
        "metric": "accuracy",
        "alpha": 0.05,
        "max_latency_ratio": 2.0,
        "latency_slack_ms": 1.0,
        "max_error_rate_increase": 0.01,
        "mode": "manual",
    }
    assert Policy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_labelled", 5, "min_labelled 5: at least 10"),
        ("min_labelled", "many", "min_labelled 'many': a whole number"),
        ("min_labelled", True, "min_labelled True"),
        ("metric", "auc", "metric 'auc': use one of accuracy, f1, mae, rmse, roc_auc"),
        ("alpha", 0, "alpha 0: a level between 0 and 1"),
        ("alpha", "0.05", "alpha '0.05'"),
        ("max_latency_ratio", -1, "max_latency_ratio -1: a ratio above 0"),
        ("latency_slack_ms", -1, "latency_slack_ms -1: milliseconds, 0 or more"),
        ("max_error_rate_increase", 2, "max_error_rate_increase 2: between 0 and 1"),
        ("mode", "sometimes", "mode 'sometimes': use one of auto, manual"),
        ("speed", 1, "unknown field(s) speed"),
    ],
)
def test_a_bad_value_names_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        Policy.from_dict({field: value})
