"""Look-alike columns (``watchkeeper.schema_roles``) and the reasons and overrides of
``explain_schema``; the service's use of them is tested in tests/service/test_registration_roles.py."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.errors import SchemaError
from watchkeeper.schema import ColumnType, Role, explain_schema, infer_schema
from watchkeeper.schema_roles import score_like_name, time_like_name

N = 200


@pytest.mark.parametrize(
    "name",
    ["churn_score", "score", "scores", "proba", "proba_1", "predict_proba", "prob_yes", "p_yes",
     "p_1", "fraud_probability", "probabilities", "confidence", "churnScore", "Likelihood-ratio"],
)  # fmt: skip
def test_names_like_a_score(name: str) -> None:
    assert score_like_name(name)


@pytest.mark.parametrize(
    "name", ["age", "p", "pscore", "scoreboard", "probe", "product_id", "top_p", "pay"]
)
def test_names_not_like_a_score(name: str) -> None:
    assert not score_like_name(name)


def test_names_like_a_time() -> None:
    assert all(map(time_like_name, ["created_at", "event_time", "ts", "requestTimestamp"]))
    assert not any(map(time_like_name, ["attempts", "timeout", "status", "age"]))


def table(**extra: object) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "age": rng.normal(40, 10, N),
            "credit_score": rng.uniform(300, 850, N),
            "pred": rng.choice(["yes", "no"], N),
            "churn_score": rng.uniform(0, 1, N),
            **extra,
        }
    )


def test_a_lone_score_beside_a_binary_prediction_is_the_score() -> None:
    schema, why = explain_schema(table(), prediction="pred", exclude_lookalikes=True)
    assert schema["churn_score"].role == Role.SCORE and not schema["churn_score"].drift
    assert schema["credit_score"].role == Role.FEATURE  # 300 to 850: an input
    assert why["credit_score"] == (
        "named like a score, but its values are not all in [0, 1]: numeric, required (no nulls)"
    )
    # off by default: the library's inference is unchanged
    assert infer_schema(table(), prediction="pred")["churn_score"].role == Role.FEATURE


def test_a_binary_target_must_be_binary_too() -> None:
    three = table(label=np.random.default_rng(1).choice(["a", "b", "c"], N))
    schema, why = explain_schema(three, prediction="pred", target="label", exclude_lookalikes=True)
    assert schema["churn_score"].role == Role.IGNORED
    assert why["churn_score"].endswith("the prediction or target has more than two classes")


def test_given_scores_leave_other_look_alikes_ignored() -> None:
    extra = table(p_other=np.random.default_rng(2).uniform(0, 1, N))
    schema, why = explain_schema(
        extra, prediction="pred", scores="churn_score", exclude_lookalikes=True
    )
    assert (schema["churn_score"].role, why["churn_score"]) == (Role.SCORE, "given as scores")
    assert schema["p_other"].role == Role.IGNORED
    assert why["p_other"] == "named like a score, values in [0, 1], not one of the given scores"


def test_epoch_times_in_seconds_or_milliseconds_are_ignored() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    seconds = np.linspace(now - 86400, now, N).astype(np.int64)
    schema, why = explain_schema(
        table(created_at=seconds, sent_ts=seconds * 1000.0, updated_at=np.arange(N) * 7.0),
        exclude_lookalikes=True,
    )
    assert schema["created_at"].role == schema["sent_ts"].role == Role.IGNORED
    assert why["sent_ts"] == "named like a time, values look like epoch times"
    assert schema["updated_at"].role == Role.FEATURE  # not epoch-like values


def test_overrides_force_a_role_and_keep_a_usable_type() -> None:
    ids = [f"c{i:05d}" for i in range(N)]
    stamps = pa.array([dt.datetime(2026, 1, 1) + dt.timedelta(hours=i) for i in range(N)])
    schema, why = explain_schema(
        table(customer_id=ids, seen=stamps),
        features=["customer_id", "seen"],
        ignore="age",
        exclude_lookalikes=True,
    )
    assert (schema["customer_id"].role, schema["customer_id"].type) == (
        Role.FEATURE, ColumnType.CATEGORICAL,
    )  # fmt: skip
    assert schema["seen"].role == Role.FEATURE  # not made the timestamp: given as a feature
    assert why["seen"] == "given as features: date/time, no drift check"
    assert (schema["age"].role, schema["age"].drift, why["age"]) == (
        Role.IGNORED, False, "given in ignore",
    )  # fmt: skip
    # not inferred: the same columns get their own roles
    plain, reasons = explain_schema(table(customer_id=ids, seen=stamps))
    assert plain["customer_id"].role == Role.ID and plain["seen"].role == Role.TIMESTAMP
    assert reasons["customer_id"] == "named like an id, many distinct values"
    assert reasons["seen"] == "the only date/time column"


def test_contradictory_or_unknown_overrides() -> None:
    with pytest.raises(SchemaError, match="'age' is given as both features and ignore"):
        infer_schema(table(), features="age", ignore=["age"])
    with pytest.raises(SchemaError, match="'pred' is given as both prediction and features"):
        infer_schema(table(), prediction="pred", features="pred")
    with pytest.raises(SchemaError, match=r"^ignore: column 'nope' not found; available columns"):
        infer_schema(table(), ignore="nope")
