"""Validation rules: in the schema (and its files), suggested from a reference, checked by
ingest validation (vectorised, a reason per field), exchanged with Great Expectations, and
the ``watchkeeper constraints suggest`` command."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from watchkeeper import constraints
from watchkeeper.cli import main
from watchkeeper.errors import SchemaError
from watchkeeper.ingest.bounds import ID_CHARS, LABEL_CHARS, Plausibility
from watchkeeper.ingest.validate import label_problems, validate
from watchkeeper.schema import ColumnSchema, Schema, infer_schema

NOW = 1_750_000_000.0


def reference(rows: int = 200) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "age": rng.integers(18, 90, rows).astype(float),
            "income": pa.array(rng.normal(50_000, 10_000, rows), mask=rng.random(rows) < 0.1),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "code": [f"C{i:04d}" for i in range(rows)],
        }
    )


def rows(schema: Schema, **columns: list[object]) -> pa.Table:
    n = len(next(iter(columns.values())))
    base: dict[str, object] = {"prediction_id": [f"p{i}" for i in range(n)], "timestamp": [NOW] * n}
    return pa.table({**base, **columns})


def test_old_schema_files_load_and_rules_round_trip(tmp_path: Path) -> None:
    old = {"version": 1, "columns": [{"name": "age", "type": "numeric", "role": "feature"}]}
    schema = Schema.from_dict(old)
    assert schema.on_violation == "quarantine" and schema["age"].rules() == {}
    assert "min_value" not in schema.to_dict()["columns"][0] and "on_violation" not in (
        schema.to_dict()
    )
    ruled = schema.with_overrides(age={"min_value": 0, "max_value": 120})
    ruled = Schema(ruled.columns, "count")
    for name in ("s.json", "s.yaml"):
        ruled.save(tmp_path / name)
        assert Schema.load(tmp_path / name) == ruled
    assert Schema.load(tmp_path / "s.json")["age"].rules() == {"min_value": 0, "max_value": 120}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "numeric", "regex": "x"}, "regex applies to categorical"),
        ({"type": "categorical", "min_value": 1}, "min_value applies to numeric"),
        ({"type": "numeric", "min_value": 5, "max_value": 1}, "above max_value"),
        ({"type": "numeric", "min_value": "a"}, "must be a number"),
        ({"type": "categorical", "regex": "(unclosed"}, "invalid regex"),
        ({"type": "categorical", "value_set": []}, "non-empty list"),
        ({"type": "categorical", "max_length": -1}, "non-negative integer"),
        ({"type": "text", "max_length": 3}, "numeric and categorical columns only"),
    ],
)
def test_bad_rules_are_refused_naming_the_column(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        Schema.from_dict({"columns": [{"name": "col", **spec}]})
    assert "col" in str(info.value)
    with pytest.raises(SchemaError, match="on_violation"):
        Schema.from_dict({"columns": [], "on_violation": "ignore"})


def test_suggest_observed_ranges_categories_lengths_and_nullability() -> None:
    ref = reference()
    exact = constraints.suggest(ref, margin=0.0)["columns"]
    assert exact["age"] == {"min_value": 18.0, "max_value": 89.0, "nullable": False}
    assert exact["plan"] == {"value_set": ["basic", "plus", "pro"], "nullable": False}
    assert exact["income"]["nullable"] is True
    assert "code" not in exact  # an id column: not a feature
    wide = constraints.suggest(ref)["columns"]
    assert wide["age"] == {"min_value": 10.0, "max_value": 97.0, "nullable": False}  # ±7.1
    many = pa.table({"word": [f"w{i}" * (1 + i % 3) for i in range(120)], "y": range(120)})
    suggested = constraints.suggest(many, schema=infer_schema(many, categorical="word"))
    assert suggested["columns"]["word"] == {"max_length": math.ceil(12 * 1.1), "nullable": False}
    low = constraints.suggest(pa.table({"x": [0.5, 1.0, 2.0]}), margin=1.0)["columns"]["x"]
    assert low["min_value"] == 0.0  # never below 0 when the reference is not
    with pytest.raises(SchemaError, match="margin"):
        constraints.suggest(ref, margin=-1)


def test_validate_quarantines_or_counts_violations_with_a_reason_per_field() -> None:
    schema = constraints.apply(
        infer_schema(reference()),
        {"columns": {"age": {"max_value": 100}, "plan": {"regex": "^[a-z]+$", "max_length": 5}}},
    )
    table = rows(schema, age=[30.0, 130.0, 40.0], plan=["basic", "Gold!!", "pro"])
    checked = validate(table, schema, now=NOW)
    assert checked.accepted.column("prediction_id").to_pylist() == ["p0", "p2"]
    assert checked.rejected[0]["reasons"] == [
        {"field": "age", "problem": "130.0 is above the maximum 100"},
        {"field": "plan", "problem": "'Gold!!' does not match the pattern '^[a-z]+$'"},
        {"field": "plan", "problem": "6 characters, above the maximum length 5"},
    ]
    counted = validate(table, Schema(schema.columns, "count"), now=NOW)
    assert counted.rejected == [] and counted.accepted.num_rows == 3
    assert [(w["index"], len(w["reasons"])) for w in counted.warnings] == [(1, 3)]


def test_plausibility_and_store_limits() -> None:
    schema = infer_schema(reference())
    table = rows(
        schema,
        age=[30.0, math.inf, -math.inf, 30.0],
        plan=["basic"] * 4,
        latency_ms=[1.0, 2.0, -1.0, 1e12],
    )
    table = table.set_column(1, "timestamp", pa.array([NOW, NOW * 1000, NOW, NOW - 1e10]))
    table = table.set_column(0, "prediction_id", pa.array(["a", "b", "c" * 300, "d"]))
    checked = validate(table, schema, now=NOW)
    why = {r["index"]: [(x["field"], x["problem"]) for x in r["reasons"]] for r in checked.rejected}
    assert checked.accepted.num_rows == 1
    assert why[1][0][0] == "timestamp" and "milliseconds?" in why[1][0][1]
    assert why[1][1] == ("age", "not a finite number: inf")
    assert why[2][0] == ("prediction_id", f"longer than the {ID_CHARS} characters the store holds")
    assert checked.rejected[1]["prediction_id"] == "c" * ID_CHARS  # fits the quarantine
    assert ("latency_ms", "negative: -1") in why[2]
    assert (
        why[3][0][0] == "timestamp"
        and ("latency_ms", "1e+12 is above the maximum 8.64e+07") in why[3]
    )
    lenient = Plausibility(max_event_age_days=1e6, max_latency_ms=1e13)
    kept = validate(table.slice(3), schema, now=NOW, plausible=lenient)
    assert kept.rejected[0]["reasons"][0]["problem"].startswith("-8250000000 is outside")


def test_labels_the_store_cannot_hold_or_not_finite() -> None:
    assert label_problems({"prediction_id": "p", "label": "yes"}) == []
    assert label_problems({"prediction_id": "p", "label": 3.5}) == []
    assert [p["field"] for p in label_problems({"prediction_id": "p" * 201, "label": 1})] == [
        "prediction_id"
    ]
    long = label_problems({"prediction_id": "p", "label": "x" * (LABEL_CHARS + 1)})
    assert long == [{"field": "label", "problem": "longer than the 400 characters the store holds"}]
    for label in (float("nan"), float("inf"), "NaN", "-inf"):
        assert label_problems({"prediction_id": "p", "label": label})[0]["field"] == "label"


def test_great_expectations_round_trip_and_unknown_expectations() -> None:
    doc = constraints.parse(
        {
            "on_violation": "count",
            "columns": {
                "age": {"min_value": 0, "max_value": 120, "nullable": False},
                "plan": {"value_set": ["basic", "pro"], "regex": "^[a-z]+$", "max_length": 10},
            },
        }
    )
    suite = constraints.to_great_expectations(doc, name="churn")
    assert suite["expectation_suite_name"] == "churn"
    assert {e["expectation_type"] for e in suite["expectations"]} == set(
        constraints.GE_EXPECTATIONS
    )
    assert constraints.from_great_expectations(json.loads(json.dumps(suite))) == doc
    v1 = {  # the Great Expectations 1.x shape: "type" and "name"
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "a", "max_value": 3},
            }
        ],
    }
    assert constraints.parse(v1)["columns"] == {"a": {"max_value": 3}}
    unknown = {
        "expectations": [
            {"expectation_type": "expect_column_mean_to_be_between", "kwargs": {"column": "a"}},
            {"expectation_type": "expect_table_row_count_to_equal", "kwargs": {"value": 3}},
        ]
    }
    with pytest.raises(SchemaError, match="expect_column_mean_to_be_between") as info:
        constraints.from_great_expectations(unknown)
    assert "expect_table_row_count_to_equal" in str(info.value)
    assert "understood: expect_column_values_to_be_between" in str(info.value)
    mostly = {
        "expectations": [
            {
                "expectation_type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a", "mostly": 0.9},
            }
        ]
    }
    with pytest.raises(SchemaError, match="mostly"):
        constraints.from_great_expectations(mostly)
    with pytest.raises(SchemaError, match="unknown rule"):
        constraints.parse({"columns": {"a": {"minimum": 1}}})


def test_check_is_vectorised_over_a_million_rows() -> None:
    col = ColumnSchema("x", "numeric", min_value=0.0, max_value=1.0)  # type: ignore[arg-type]
    values = pa.array(np.random.default_rng(0).normal(0.5, 0.3, 1_000_000))
    start = time.perf_counter()
    found = constraints.check(values, col)
    assert time.perf_counter() - start < 1.0
    assert sum(int(mask.sum()) for mask, _ in found) == int(
        ((values.to_numpy() < 0) | (values.to_numpy() > 1)).sum()
    )


def test_cli_suggest_writes_constraints_and_great_expectations(tmp_path: Path) -> None:
    from pyarrow import csv

    path = tmp_path / "ref.csv"
    csv.write_csv(reference().append_column("churned", pa.array(["y", "n"] * 100)), path)
    runner = CliRunner()
    out = tmp_path / "c.json"
    result = runner.invoke(
        main, ["constraints", "suggest", str(path), "--target", "churned", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc["columns"]) == {"age", "income", "plan"} and doc["on_violation"] == "quarantine"
    result = runner.invoke(main, ["constraints", "suggest", str(path), "--great-expectations"])
    assert result.exit_code == 0, result.output
    assert constraints.parse(result.output)["columns"]["plan"]["value_set"] == [
        "basic",
        "plus",
        "pro",
    ]
    missing = runner.invoke(main, ["constraints", "suggest", str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0 and "nope.csv" in missing.output


def test_a_segment_key_longer_than_the_store_holds_is_rejected() -> None:
    schema = infer_schema(reference(), segments="plan")
    table = rows(schema, age=[30.0, 40.0], plan=["basic", "p" * 400])
    checked = validate(table, schema, now=NOW)
    assert [r["index"] for r in checked.rejected] == [1]
    assert checked.rejected[0]["reasons"] == [
        {"field": "plan", "problem": "segment key of 405 characters; the store holds 400"}
    ]


def test_plausibility_limits_are_settings() -> None:
    from watchkeeper.errors import InputError
    from watchkeeper.settings import load_settings

    env = {"WATCHKEEPER_MAX_EVENT_AGE_DAYS": "1", "WATCHKEEPER_MAX_LATENCY_MS": "1000"}
    assert Plausibility.from_settings(load_settings(environ=env)) == Plausibility(1, 86400, 1000)
    with pytest.raises(InputError, match="max_latency_ms"):
        load_settings(environ={"WATCHKEEPER_MAX_LATENCY_MS": "-1"})
    schema = infer_schema(reference())
    table = rows(schema, age=[30.0], plan=["basic"])
    table = table.set_column(1, "timestamp", pa.array([NOW - 2 * 86400]))
    assert validate(table, schema, now=NOW).rejected == []
    strict = validate(table, schema, now=NOW, plausible=Plausibility(max_event_age_days=1))
    assert strict.rejected[0]["reasons"] == [
        {"field": "timestamp", "problem": "1749827200 is more than 1 days before ingest"}
    ]
