"""Tests for watchkeeper.schema: inference rules, overrides, serialisation and coercion."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import InputError, SchemaError
from watchkeeper.schema import (
    ColumnSchema,
    ColumnType,
    Role,
    Schema,
    coerce_column,
    default_drift,
    infer_schema,
)

N = 600
WORDS = np.array(["the", "model", "saw", "a", "quick", "brown", "fox", "jumps", "over", "dogs"])


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(WORDS[rng.integers(0, len(WORDS), 8)]) for _ in range(n)]


@pytest.fixture(scope="module")
def mixed() -> pa.Table:
    rng = np.random.default_rng(7)
    income = rng.normal(50_000, 10_000, N)
    income[::50] = np.nan
    return pa.table(
        {
            "income": income,
            "n_children": rng.integers(0, 5, N),
            "amount_cents": rng.integers(0, 10**9, N),
            "country": [[None, "FR", "DE", "US"][k] for k in rng.integers(0, 4, N)],
            "is_member": rng.random(N) < 0.3,
            "customer_id": [f"C{i:06d}" for i in rng.permutation(N)],
            "row_number": np.arange(N) + 1000,
            "comment": _sentences(rng, N),
            "event_time": pa.array((np.arange(N) * 3600).astype("datetime64[s]")),
            "label": rng.integers(0, 2, N),
            "predicted": rng.integers(0, 2, N),
            "proba": rng.random(N),
        }
    )


def _types(schema: Schema) -> dict[str, str]:
    return {c.name: c.type.value for c in schema}


def test_inference_on_a_realistic_mixed_table(mixed: pa.Table) -> None:
    schema = infer_schema(mixed)
    assert schema.names() == mixed.column_names
    assert _types(schema) == {
        "income": "numeric",
        "n_children": "categorical",
        "amount_cents": "numeric",  # unique integer measurements are not ids
        "country": "categorical",
        "is_member": "categorical",
        "customer_id": "id",
        "row_number": "id",  # consecutive unique integers
        "comment": "text",
        "event_time": "datetime",
        "label": "categorical",
        "predicted": "categorical",
        "proba": "numeric",
    }
    assert schema["customer_id"].role == Role.ID and schema["row_number"].role == Role.ID
    assert schema["event_time"].role == Role.TIMESTAMP and schema.timestamp == "event_time"
    assert schema.target is None
    assert [c.name for c in schema.drift_columns()] == [
        "income", "n_children", "amount_cents", "country", "is_member", "label", "predicted",
        "proba",
    ]  # fmt: skip
    assert schema["income"].nullable and schema["country"].nullable
    assert not schema["n_children"].nullable
    assert schema["income"].dtype == "double" and schema["event_time"].dtype == "timestamp[s]"


def test_roles_from_arguments(mixed: pa.Table) -> None:
    schema = infer_schema(
        mixed, target="label", prediction="predicted", scores=["proba"], segments=["country"]
    )
    assert schema.target == "label" and schema["label"].type == ColumnType.CATEGORICAL
    assert [c.name for c in schema.by_role(Role.PREDICTION)] == ["predicted"]
    assert schema["proba"].role == Role.SCORE and schema["proba"].type == ColumnType.NUMERIC
    assert schema["country"].role == Role.SEGMENT and schema["country"].drift
    drift = [c.name for c in schema.drift_columns()]
    assert drift == ["income", "n_children", "amount_cents", "country", "is_member"]
    assert not schema["label"].drift and not schema["predicted"].drift and not schema["proba"].drift


def test_forced_types_exclude_and_explicit_ids(mixed: pa.Table) -> None:
    schema = infer_schema(
        mixed,
        categorical=["amount_cents"],
        numeric="n_children",
        text=["country"],
        datetime=["row_number"],
        id_columns=["comment"],
        exclude=["income"],
    )
    assert schema["amount_cents"].type == ColumnType.CATEGORICAL
    assert schema["n_children"].type == ColumnType.NUMERIC
    assert schema["country"].type == ColumnType.TEXT and not schema["country"].drift
    assert schema["comment"].type == ColumnType.ID and schema["comment"].role == Role.ID
    assert schema["income"].type == ColumnType.NUMERIC and not schema["income"].drift
    # two datetime columns now: none becomes the timestamp implicitly
    assert schema["row_number"].type == ColumnType.DATETIME and schema.timestamp is None


def test_named_timestamp_and_inference_switches(mixed: pa.Table) -> None:
    schema = infer_schema(mixed, timestamp="row_number")
    assert schema.timestamp == "row_number" and schema["row_number"].type == ColumnType.DATETIME
    assert schema["event_time"].role == Role.FEATURE and not schema["event_time"].drift
    off = infer_schema(mixed, infer_ids=False, infer_timestamp=False)
    assert off.timestamp is None
    assert off["customer_id"].type == ColumnType.CATEGORICAL
    assert off["customer_id"].role == Role.FEATURE and off["customer_id"].drift


def test_max_categorical_integer_cardinality(mixed: pa.Table) -> None:
    narrow = infer_schema(mixed, max_categorical_integer_cardinality=2)
    assert narrow["n_children"].type == ColumnType.NUMERIC
    table = pa.table({"code": np.arange(3000) % 100})
    assert infer_schema(table)["code"].type == ColumnType.NUMERIC
    wide = infer_schema(table, max_categorical_integer_cardinality=100)
    assert wide["code"].type == ColumnType.CATEGORICAL


def test_tiny_reference_rules() -> None:
    table = pa.table(
        {"age": [31, 45, 27, 52, 38, 61], "flag": [0, 1, 1, 0, 0, 1], "s": list("abcdef")}
    )
    schema = infer_schema(table)
    assert schema["age"].type == ColumnType.NUMERIC  # all distinct, too few rows to be categorical
    assert schema["flag"].type == ColumnType.CATEGORICAL  # binary
    assert schema["s"].type == ColumnType.CATEGORICAL  # too few rows to call it an id


def test_target_and_prediction_are_never_id_or_text() -> None:
    table = pa.table({"y": [f"class {i} of many words here" for i in range(200)]})
    assert infer_schema(table)["y"].type == ColumnType.TEXT
    schema = infer_schema(table, target="y")
    assert schema["y"].type == ColumnType.CATEGORICAL and schema["y"].role == Role.TARGET


def test_id_like_names_and_hashes() -> None:
    rng = np.random.default_rng(3)
    n = 400
    table = pa.table(
        {
            "userId": rng.integers(0, 10**12, n),
            "store_id": rng.integers(0, 5, n),
            "sha": [f"{x:064x}" for x in rng.integers(0, 2**62, n)],
            "paid": rng.integers(0, 10**6, n),
            "UUID": [f"u-{i}" for i in range(n)],
        }
    )
    schema = infer_schema(table)
    assert schema["userId"].type == ColumnType.ID
    assert schema["store_id"].type == ColumnType.CATEGORICAL  # an id name but low cardinality
    assert schema["sha"].type == ColumnType.ID  # long but no spaces: not free text
    assert schema["paid"].type == ColumnType.NUMERIC  # "paid" does not end in an id token
    assert schema["UUID"].type == ColumnType.ID


def test_other_arrow_types() -> None:
    table = pa.table(
        {
            "iso": ["2024-01-01", "2024-01-02T10:00:00", None] * 10,
            "dict": pa.array(["a", "b", "a"] * 10).dictionary_encode(),
            "dict_int": pa.array([1, 2, 3] * 10).dictionary_encode(),
            "empty": pa.nulls(30),
            "empty_int": pa.nulls(30, pa.int32()),
            "nested": [[1, 2]] * 30,
            "date": pa.array(np.arange(30).astype("datetime64[D]")),
            "dur": pa.array(np.arange(30), pa.duration("s")),
            "dec": pa.array([1] * 30, pa.decimal128(5, 2)),
        }
    )
    assert _types(infer_schema(table)) == {
        "iso": "datetime", "dict": "categorical", "dict_int": "categorical",
        "empty": "categorical", "empty_int": "numeric", "nested": "text", "date": "datetime",
        "dur": "numeric", "dec": "numeric",
    }  # fmt: skip


def test_infer_accepts_any_input() -> None:
    schema = infer_schema({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert _types(schema) == {"a": "numeric", "b": "categorical"}
    with pytest.raises(InputError, match="reference: unsupported input type int"):
        infer_schema(5)


def test_inference_errors(mixed: pa.Table) -> None:
    with pytest.raises(SchemaError) as info:
        infer_schema(mixed, target="churn")
    message = str(info.value)
    assert message.startswith("target: column 'churn' not found; available columns: income, ")
    for kwargs in ({"segments": ["nope"]}, {"exclude": "nope"}, {"numeric": ["nope"]}):
        with pytest.raises(SchemaError, match="column 'nope' not found"):
            infer_schema(mixed, **kwargs)
    with pytest.raises(SchemaError, match="'label' is given as both target and prediction"):
        infer_schema(mixed, target="label", prediction=["label"])
    with pytest.raises(SchemaError, match="'income' is given two types: categorical and numeric"):
        infer_schema(mixed, categorical=["income"], numeric=["income"])


def test_inference_is_fast_on_a_large_table() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    cols: dict[str, object] = {f"f{i}": rng.normal(size=n) for i in range(10)}
    cols.update({f"i{i}": rng.integers(0, 8, n) for i in range(5)})
    cols.update({f"w{i}": rng.integers(0, 10**9, n) for i in range(3)})
    cats = pa.array([f"cat_{j}" for j in range(40)])
    cols.update({f"s{i}": cats.take(pa.array(rng.integers(0, 40, n))) for i in range(4)})
    cols["order_id"] = pc.cast(pa.array(rng.permutation(n)), pa.string())
    cols["row"] = np.arange(n)
    cols["ts"] = pa.array(np.arange(n).astype("datetime64[s]"))
    table = pa.table(cols)
    assert table.num_columns == 25
    start = time.perf_counter()
    schema = infer_schema(table)
    elapsed = time.perf_counter() - start
    assert schema["order_id"].type == ColumnType.ID and schema["row"].type == ColumnType.ID
    assert schema["i0"].type == ColumnType.CATEGORICAL and schema["w0"].type == ColumnType.NUMERIC
    assert elapsed < 1.0, f"infer_schema took {elapsed:.2f}s"


# ------------------------------------------------------------------------ Schema object


def _schema() -> Schema:
    return Schema.from_columns(
        [
            ColumnSchema("age", ColumnType.NUMERIC, dtype="int64"),
            ColumnSchema("city", ColumnType.CATEGORICAL, nullable=False),
            ColumnSchema("y", ColumnType.CATEGORICAL, Role.TARGET, drift=False),
            ColumnSchema("p", ColumnType.CATEGORICAL, Role.PREDICTION, drift=False),
            ColumnSchema("when", ColumnType.DATETIME, Role.TIMESTAMP, drift=False),
        ]
    )


def test_schema_access() -> None:
    schema = _schema()
    assert len(schema) == 5 and "age" in schema and "nope" not in schema
    assert schema["city"].nullable is False
    assert [c.name for c in schema.by_role("target")] == ["y"]
    assert [c.name for c in schema.by_type(ColumnType.CATEGORICAL)] == ["city", "y", "p"]
    assert [c.name for c in schema.drift_columns()] == ["age", "city"]
    with pytest.raises(SchemaError, match="column 'nope' not found; available columns: age, city"):
        schema["nope"]
    with pytest.raises(SchemaError, match="role: invalid value 'boss'"):
        schema.by_role("boss")


def test_column_schema_validation() -> None:
    col = ColumnSchema("a", "numeric", "score")  # type: ignore[arg-type]
    assert col.type is ColumnType.NUMERIC and col.role is Role.SCORE
    with pytest.raises(SchemaError, match=r"column 'a': type: invalid value 'float'; expected one"):
        ColumnSchema("a", "float")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="column 'a': drift must be true or false"):
        ColumnSchema("a", ColumnType.NUMERIC, drift="yes")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="non-empty string"):
        ColumnSchema("", ColumnType.NUMERIC)
    with pytest.raises(SchemaError, match="duplicate columns in schema: a"):
        Schema.from_columns([col, col])
    with pytest.raises(SchemaError, match="at most one target column is allowed, got a, b"):
        Schema.from_columns([ColumnSchema(n, ColumnType.NUMERIC, Role.TARGET) for n in ("a", "b")])
    with pytest.raises(SchemaError, match="must be a ColumnSchema named 'b'"):
        Schema({"b": col})


def test_with_overrides() -> None:
    schema = _schema()
    new = schema.with_overrides(
        {"age": {"type": "categorical", "nullable": False}, "p": {"drift": True}},
        city={"role": "score"},
    )
    assert schema["age"].type == ColumnType.NUMERIC  # the original is unchanged
    assert new["age"].type == ColumnType.CATEGORICAL and not new["age"].nullable
    # role changed and drift not given: the default drift flag follows the new role
    assert new["city"].role == Role.SCORE and not new["city"].drift
    assert new["p"].drift and [c.name for c in new.drift_columns()] == ["age", "p"]
    with pytest.raises(SchemaError, match="at most one target"):
        schema.with_overrides(city={"role": "target"})
    moved = schema.with_overrides(y={"role": "feature"})
    assert moved["y"].drift is True  # was at its default (False for a target)
    kept = schema.with_overrides(age={"type": "text", "drift": True})
    assert kept["age"].drift is True
    replaced = schema.with_overrides(age=ColumnSchema("age", ColumnType.ID, Role.ID, drift=False))
    assert replaced["age"].role == Role.ID
    everything = schema.with_overrides(
        age={"type": "categorical", "role": "segment", "nullable": False, "drift": False,
             "dtype": "string"}
    )  # fmt: skip
    assert everything["age"] == ColumnSchema(
        "age", ColumnType.CATEGORICAL, Role.SEGMENT, False, False, "string"
    )


def test_with_overrides_errors() -> None:
    schema = _schema()
    with pytest.raises(SchemaError, match="column 'nope' not found"):
        schema.with_overrides(nope={"type": "numeric"})
    with pytest.raises(SchemaError, match=r"override for column 'age': unknown field\(s\) kind"):
        schema.with_overrides(age={"kind": "numeric"})
    with pytest.raises(SchemaError, match=r"unknown field\(s\) name"):
        schema.with_overrides(age={"name": "b"})
    with pytest.raises(SchemaError, match="column 'age': type: invalid value 'float'"):
        schema.with_overrides(age={"type": "float"})
    with pytest.raises(SchemaError, match="ColumnSchema named 'x'"):
        schema.with_overrides(age=ColumnSchema("x", ColumnType.NUMERIC))


def test_default_drift() -> None:
    assert default_drift(ColumnType.NUMERIC, Role.FEATURE)
    assert default_drift(ColumnType.CATEGORICAL, Role.SEGMENT)
    assert not default_drift(ColumnType.NUMERIC, Role.TARGET)
    assert not default_drift(ColumnType.TEXT, Role.FEATURE)


# ------------------------------------------------------------------------ serialisation


def test_dict_json_yaml_round_trips(mixed: pa.Table) -> None:
    for schema in (_schema(), infer_schema(mixed, target="label")):
        data = schema.to_dict()
        assert data["version"] == 1 and data["columns"][0]["name"] == schema.names()[0]
        assert Schema.from_dict(data) == schema
        assert Schema.from_json(schema.to_json()) == schema
        assert Schema.from_yaml(schema.to_yaml()) == schema


def test_save_and_load_by_extension(tmp_path: Path) -> None:
    schema = _schema()
    for name in ("s.json", "s.yaml", "s.YML"):
        schema.save(tmp_path / name)
        assert Schema.load(tmp_path / name) == schema
        assert Schema.load(str(tmp_path / name)) == schema
    assert (tmp_path / "s.json").read_text().startswith("{")
    assert Schema.from_json(str(tmp_path / "s.json")) == schema
    assert Schema.from_yaml(tmp_path / "s.yaml") == schema
    text = schema.to_json(tmp_path / "t.json")
    assert (tmp_path / "t.json").read_text() == text
    with pytest.raises(SchemaError, match=r"schema file .*s\.txt: unknown extension '.txt'"):
        schema.save(tmp_path / "s.txt")
    with pytest.raises(SchemaError, match=r"schema file not found: .*missing\.yaml"):
        Schema.load(tmp_path / "missing.yaml")


def test_hand_written_yaml_mapping_form() -> None:
    schema = Schema.from_yaml(
        "columns:\n"
        "  age: {type: numeric}\n"
        "  churn: {type: categorical, role: target}\n"
        "  seg: {type: categorical, role: segment, nullable: false}\n"
    )
    assert schema.names() == ["age", "churn", "seg"]
    assert schema["age"].drift and not schema["churn"].drift and schema["seg"].drift
    assert schema.target == "churn" and schema["seg"].nullable is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "schema must be a mapping, got list"),
        ({"columns": [], "extra": 1}, r"schema: unknown key\(s\) extra"),
        ({"version": 2, "columns": []}, "unsupported version 2"),
        ({"columns": "age"}, "'columns' must be a list or a mapping"),
        ({"columns": [5]}, "schema column #0: expected a mapping, got 5"),
        ({"columns": [{"name": "a"}]}, r"schema column 'a': missing field\(s\) type"),
        ({"columns": [{"name": "a", "type": "x"}]}, "schema column 'a': type: invalid value 'x'"),
        ({"columns": [{"name": "a", "type": "id", "color": 1}]}, r"unknown field\(s\) color"),
        ({"columns": {"a": {"type": "numeric", "role": "chief"}}}, "invalid value 'chief'"),
        (
            {"columns": [{"name": "a", "type": "numeric"}, {"name": "a", "type": "id"}]},
            "duplicate columns in schema: a",
        ),
    ],
)
def test_from_dict_errors(data: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(data)  # type: ignore[arg-type]


def test_parse_errors_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="schema text: invalid JSON"):
        Schema.from_json("{not json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml: invalid YAML"):
        Schema.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"columns": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match=r"wrong\.json: schema column 'a': missing field"):
        Schema.load(wrong)


# ------------------------------------------------------------------------ coerce_column


def test_coerce_numeric_with_bad_values() -> None:
    table = pa.table({"v": ["1.5", "abc", None, "2", "", "3e2", "12a", "NA", " 4 "]})
    values, errors = coerce_column(table, ColumnSchema("v", ColumnType.NUMERIC))
    assert values.type == pa.float64()
    assert values.to_pylist() == [1.5, None, None, 2.0, None, 300.0, None, None, 4.0]
    assert errors == 2  # "abc" and "12a"


def test_coerce_numeric_from_other_types() -> None:
    table = pa.table(
        {
            "b": [True, False, None],
            "i": pa.array([1, None, 3], pa.int8()),
            "f": [1.5, float("nan"), None],
            "d": pa.array(["2", "x", "2"]).dictionary_encode(),
        }
    )
    col = {n: coerce_column(table, ColumnSchema(n, ColumnType.NUMERIC)) for n in table.column_names}
    assert col["b"] == (pa.array([1.0, 0.0, None]), 0)
    assert col["i"] == (pa.array([1.0, None, 3.0]), 0)
    assert col["f"] == (pa.array([1.5, None, None]), 0)  # NaN is treated as missing
    assert col["d"] == (pa.array([2.0, None, 2.0]), 1)


def test_coerce_categorical() -> None:
    table = pa.table(
        {
            "b": [True, None, False],
            "i": [1, None, 30],
            "s": pa.array(["x", None, "y"], pa.large_string()),
            "f": [1.0, 2.5, float("nan")],
        }
    )
    names = table.column_names
    out = {n: coerce_column(table, ColumnSchema(n, ColumnType.CATEGORICAL)) for n in names}
    assert out["b"] == (pa.array(["true", None, "false"]), 0)
    assert out["i"] == (pa.array(["1", None, "30"]), 0)
    assert out["s"] == (pa.array(["x", None, "y"]), 0)
    assert out["f"] == (pa.array(["1", "2.5", None]), 0)
    for kind in (ColumnType.ID, ColumnType.TEXT):
        assert coerce_column(table, ColumnSchema("i", kind))[0].type == pa.string()


def test_coerce_datetime_column() -> None:
    table = pa.table({"t": ["2024-05-01T12:00:00Z", "yesterday", None]})
    values, errors = coerce_column(table, ColumnSchema("t", ColumnType.DATETIME))
    assert values.type == pa.timestamp("us", tz="UTC") and errors == 1
    assert values[0].as_py().hour == 12 and values.null_count == 2


def test_coerce_missing_column() -> None:
    table = pa.table({"a": [1]})
    with pytest.raises(SchemaError, match="column 'b' not found; available columns: a"):
        coerce_column(table, ColumnSchema("b", ColumnType.NUMERIC))


_GARBAGE = st.text(alphabet="abcxyz,;#", min_size=1, max_size=6).filter(
    lambda s: s.lower() not in {"na", "nan", "inf", "infinity"}
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False), _GARBAGE, st.none()), max_size=40))
def test_coerce_numeric_counts_type_errors_exactly(values: list[float | str | None]) -> None:
    rendered = [repr(v) if isinstance(v, float) else v for v in values]
    table = pa.table({"v": pa.array(rendered, pa.string())})
    out, errors = coerce_column(table, ColumnSchema("v", ColumnType.NUMERIC))
    assert errors == sum(isinstance(v, str) for v in values)
    expected = [v if isinstance(v, float) else None for v in values]
    assert out.to_pylist() == expected


def test_sparse_columns_are_sampled_among_non_null_values() -> None:
    n = 50_000
    rng = np.random.default_rng(5)
    sparse_ids = pa.array([f"k{i}" if i % 100 == 0 else None for i in range(n)])
    sparse_dates = pa.array(["2024-01-01" if i == 7 else None for i in range(n)])
    table = pa.table({"sparse": sparse_ids, "one_date": sparse_dates, "x": rng.random(n)})
    schema = infer_schema(table, sample_size=1000)
    assert schema["sparse"].type == ColumnType.ID  # 500 distinct non-null values
    assert schema["one_date"].type == ColumnType.DATETIME


def test_time_columns_that_are_not_iso_strings_are_datetimes() -> None:
    from watchkeeper.schema import explain_schema

    rng = np.random.default_rng(7)
    days = np.datetime64("1987-01-01") + np.arange(N)
    us = [str(d.astype(object).strftime("%m/%d/%Y")) for d in days]
    t = pa.table(
        {
            "Month": rng.choice(["May", "January", "Sept.", "dec"], N),
            "Date": us,
            "Year": np.repeat(np.arange(1987, 2021), 20)[:N],
            "founded": np.arange(1700, 1700 + N),
            "x": rng.normal(size=N),
        }
    )
    schema, reasons = explain_schema(t)
    types = {c.name: c.type for c in schema.columns.values()}
    assert types["Month"] == types["Date"] == types["Year"] == ColumnType.DATETIME
    assert reasons["Month"].startswith("month names")
    assert reasons["Date"].startswith("dates, not ISO 8601")
    assert reasons["Year"].startswith("integer years")
    # unique consecutive integers outside 1800..2200 stay ids; a number in range stays numeric
    assert types["founded"] == ColumnType.ID and types["x"] == ColumnType.NUMERIC
    counts = pa.table({"count": rng.integers(1900, 2100, N)})
    assert infer_schema(counts).columns["count"].type == ColumnType.NUMERIC
    # the one date column is the timestamp, and orders the reference by the dates it reads as
    alone, why = explain_schema(pa.table({"Date": us[::-1], "x": np.arange(N, dtype=float)}))
    assert alone.columns["Date"].role == Role.TIMESTAMP and "dates" in why["Date"]
    from watchkeeper.calibration_chunks import time_ordered

    ordered = time_ordered(pa.table({"Date": us[::-1], "x": np.arange(N, dtype=float)}), alone)
    assert ordered.column("Date").to_pylist() == us
    months = explain_schema(pa.table({"m": ["May", "Jan"] * 40}))[0]
    months_t = pa.table({"m": ["May", "Jan"] * 40})
    assert time_ordered(months_t, months).equals(months_t)  # no year: row order kept


def test_near_unique_strings_are_ids_not_categories() -> None:
    from watchkeeper.schema import explain_schema

    rng = np.random.default_rng(8)
    ticket = [f"A/5 {v}" if i % 3 else str(v) for i, v in enumerate(rng.integers(1, 5000, N))]
    cabin = [f"C{v}" for v in rng.integers(1, 500, N)]
    t = pa.table({"Ticket": ticket, "Cabin": cabin, "Embarked": rng.choice(list("CQS"), N)})
    schema, reasons = explain_schema(t)
    assert schema.columns["Ticket"].role == schema.columns["Cabin"].role == Role.ID
    assert reasons["Cabin"].startswith("most values distinct")
    assert schema.columns["Embarked"].type == ColumnType.CATEGORICAL
    # few distinct values, even if most are unique: still categories
    small = pa.table({"code": [f"k{i % 40}" for i in range(N)]})
    assert infer_schema(small).columns["code"].type == ColumnType.CATEGORICAL
