"""Validation rules per column: suggested from a reference, checked at ingest, exchanged with
Great Expectations.

A *constraints* document names rules per column and what a violation does::

    {"version": 1, "on_violation": "quarantine",
     "columns": {"age": {"min_value": 0, "max_value": 120, "nullable": false},
                 "plan": {"value_set": ["basic", "plus", "pro"]},
                 "email": {"regex": "^[^@]+@[^@]+$", "max_length": 254}}}

Rules (the :class:`~watchkeeper.schema.ColumnSchema` fields of the same names): ``min_value`` /
``max_value`` (numeric), ``value_set`` (the allowed values), ``regex`` (categorical; a value
must contain a match, RE2 syntax, anchor with ``^…$``), ``max_length`` (categorical, in
characters), and ``nullable``. ``on_violation`` is ``quarantine`` (the row is rejected with
its reasons, like a type error) or ``count`` (the row is accepted; the violation is counted in
``violations_total`` and returned as a warning). A missing value never violates a rule:
``nullable: false`` is what requires one (and always rejects, as before rules existed).

:func:`suggest` proposes rules from a reference (as SageMaker Model Monitor's suggested
constraints do); :func:`apply` sets them on a schema; :func:`to_great_expectations` and
:func:`from_great_expectations` convert to and from a Great Expectations suite (its JSON
shape; the package is not needed). :func:`check` is the vectorised check ingest runs.

Examples
--------
>>> import pyarrow as pa
>>> ref = pa.table({"age": [20.0, 30.0, 40.0], "plan": ["basic", "pro", "basic"]})
>>> rules = suggest(ref, margin=0.0)
>>> rules["columns"]["age"]["min_value"], rules["columns"]["plan"]["value_set"]
(20.0, ['basic', 'pro'])
>>> [e["expectation_type"] for e in to_great_expectations(rules)["expectations"]][:2]
['expect_column_values_to_be_between', 'expect_column_values_to_not_be_null']
>>> from_great_expectations(to_great_expectations(rules)) == rules
True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import SchemaError
from watchkeeper.io import coerce_array, to_table
from watchkeeper.schema import ON_VIOLATION, RULES, ColumnSchema, ColumnType, Role, Schema

__all__ = ["apply", "check", "from_great_expectations", "load", "parse", "save", "suggest"]
__all__ += ["to_great_expectations"]

VERSION = 1
MAX_SUGGESTED_VALUES = 50  # a categorical column with more distinct values gets max_length
CHECKED_ROLES = (Role.FEATURE, Role.SEGMENT)  # the columns ingest validates
_KEYS = (*RULES, "nullable")

# Great Expectations: the expectations understood, and the kwargs each may carry.
GE_EXPECTATIONS = {
    "expect_column_values_to_be_between": ("min_value", "max_value"),
    "expect_column_values_to_be_in_set": ("value_set",),
    "expect_column_values_to_match_regex": ("regex",),
    "expect_column_value_lengths_to_be_between": ("min_value", "max_value"),
    "expect_column_values_to_not_be_null": (),
}
_GE_IGNORED_KWARGS = {"column", "result_format", "include_config", "catch_exceptions", "meta"}


def suggest(
    reference: object,
    *,
    schema: Schema | None = None,
    margin: float = 0.1,
    on_violation: str = "quarantine",
) -> dict[str, Any]:
    """Rules observed in ``reference`` for its features and segments.

    Numeric: ``min_value`` / ``max_value`` widened by ``margin`` × the observed range on each
    side (``margin=0``: exactly the observed ones; integer-valued columns get integer bounds;
    a column never below 0 keeps 0 as its floor). Categorical: ``value_set`` of the values seen
    when there are at most 50, else ``max_length`` (widened by ``margin``). ``nullable:
    false`` where the reference has no missing value. ``schema`` defaults to the inferred one.
    """
    if margin < 0 or not math.isfinite(margin):
        raise SchemaError(f"margin must be a non-negative number, got {margin!r}")
    table = to_table(reference, name="reference")
    if schema is None:
        from watchkeeper.schema import infer_schema

        schema = infer_schema(table)
    columns: dict[str, dict[str, Any]] = {}
    for col in schema:
        if col.role not in CHECKED_ROLES or col.name not in table.column_names:
            continue
        if col.type not in (ColumnType.NUMERIC, ColumnType.CATEGORICAL):
            continue
        values, _ = coerce_array(table.column(col.name), col.type.value)
        rules: dict[str, Any] = {}
        if values.null_count < len(values):
            rules = (_numeric if col.type == ColumnType.NUMERIC else _categorical)(values, margin)
        rules["nullable"] = bool(values.null_count > 0 or len(values) == 0)
        columns[col.name] = rules
    return {"version": VERSION, "on_violation": on_violation, "columns": columns}


def _numeric(values: pa.Array, margin: float) -> dict[str, Any]:
    finite = pc.filter(values, pc.is_finite(values))
    if len(finite) == 0:
        return {}
    bounds = pc.min_max(finite)
    low, high = float(bounds["min"].as_py()), float(bounds["max"].as_py())
    pad = margin * (high - low)
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    if bool(pc.all(pc.equal(pc.floor(finite), finite)).as_py()):
        lo, hi = float(math.floor(lo)), float(math.ceil(hi))
    return {"min_value": lo, "max_value": hi}


def _categorical(values: pa.Array, margin: float) -> dict[str, Any]:
    distinct = pc.unique(values.drop_null())
    if len(distinct) <= MAX_SUGGESTED_VALUES:
        return {"value_set": sorted(distinct.to_pylist())}
    longest = int(pc.max(pc.utf8_length(distinct)).as_py())
    return {"max_length": math.ceil(longest * (1 + margin))}


def parse(data: object) -> dict[str, Any]:
    """A constraints document (see the module docstring) or a Great Expectations suite (a
    mapping, JSON text or a file path), checked and returned as a constraints document."""
    if isinstance(data, os.PathLike) or (
        isinstance(data, str) and data.lstrip()[:1] not in ("{", "[")
    ):
        return load(data)
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise SchemaError(f"constraints: invalid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise SchemaError(f"constraints: expected a mapping, got {type(data).__name__}")
    if "expectations" in data:
        return from_great_expectations(data)
    unknown = sorted(set(map(str, data)) - {"version", "on_violation", "columns"})
    if unknown:
        raise SchemaError(f"constraints: unknown key(s) {', '.join(unknown)}")
    if data.get("version", VERSION) != VERSION:
        raise SchemaError(f"constraints: unsupported version {data['version']!r}")
    policy = data.get("on_violation", "quarantine")
    if policy not in ON_VIOLATION:
        raise SchemaError(
            f"constraints: on_violation {policy!r}; expected one of {', '.join(ON_VIOLATION)}"
        )
    columns = data.get("columns", {})
    if not isinstance(columns, Mapping):
        raise SchemaError("constraints: 'columns' must map column names to rules")
    for name, rules in columns.items():
        if not isinstance(rules, Mapping):
            raise SchemaError(f"constraints: column {name!r}: expected a mapping of rules")
        bad = sorted(set(map(str, rules)) - set(_KEYS))
        if bad:
            raise SchemaError(
                f"constraints: column {name!r}: unknown rule(s) {', '.join(bad)}; "
                f"expected {', '.join(_KEYS)}"
            )
    return {
        "version": VERSION,
        "on_violation": policy,
        "columns": {str(k): dict(v) for k, v in columns.items()},
    }


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a constraints document or a Great Expectations suite from a JSON file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read constraints file {os.fsdecode(path)}: {exc}") from None
    try:
        return parse(json.loads(text))
    except ValueError as exc:
        raise SchemaError(f"{os.fsdecode(path)}: {exc}") from None


def save(
    constraints: object,
    path: str | os.PathLike[str] | None = None,
    *,
    great_expectations: bool = False,
) -> str:
    """The constraints as JSON text (a Great Expectations suite with ``great_expectations``);
    also written to ``path`` if given."""
    doc = to_great_expectations(constraints) if great_expectations else parse(constraints)
    text = json.dumps(doc, indent=2) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def apply(
    schema: Schema,
    constraints: object,
    *,
    on_violation: str | None = None,
    reference: object = None,
) -> Schema:
    """A copy of ``schema`` with the rules of ``constraints`` (see :func:`parse`; ``"suggest"``:
    :func:`suggest` from ``reference``; None: no rules) set on its columns, and its
    ``on_violation`` policy (the argument wins over the document's)."""
    if constraints is None:
        return Schema(schema.columns, on_violation or schema.on_violation)
    if isinstance(constraints, str) and constraints == "suggest":
        if reference is None:
            raise SchemaError("constraints 'suggest' needs a reference")
        constraints = suggest(reference, schema=schema)
    doc = parse(constraints)
    changed = schema.with_overrides(doc["columns"])
    policy = on_violation or doc["on_violation"]
    return Schema(changed.columns, policy)


# ---------------------------------------------------------------------- checking at ingest
Problem = Callable[[int], str]


def check(values: pa.Array, col: ColumnSchema) -> list[tuple[np.ndarray[Any, Any], Problem]]:
    """The rows of ``values`` (the column coerced by its type: float64 or string) that break a
    rule of ``col``: one (mask, problem-of-row) per rule broken by some row. Nulls pass."""
    found: list[tuple[np.ndarray[Any, Any], Problem]] = []
    if not col.rules():
        return found
    shown: list[Any] = []

    def value(i: int) -> Any:
        if not shown:
            shown.extend(values.to_pylist())
        return shown[i]

    def add(mask: pa.Array, problem: Problem) -> None:
        rows = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
        if rows.any():
            found.append((rows, problem))

    if col.min_value is not None:
        low = col.min_value
        add(pc.less(values, low), lambda i: f"{value(i)!r} is below the minimum {low!r}")
    if col.max_value is not None:
        high = col.max_value
        add(pc.greater(values, high), lambda i: f"{value(i)!r} is above the maximum {high!r}")
    if col.value_set is not None:
        allowed = _allowed(col)
        add(
            pc.invert(pc.is_in(values, value_set=allowed)),
            lambda i: f"{value(i)!r} is not one of the allowed values {_short(col.value_set)}",
        )
    if col.regex is not None:
        pattern = col.regex
        add(
            pc.invert(pc.match_substring_regex(values, pattern)),
            lambda i: f"{value(i)!r} does not match the pattern {pattern!r}",
        )
    if col.max_length is not None:
        most = col.max_length
        add(
            pc.greater(pc.utf8_length(values), most),
            lambda i: f"{len(value(i))} characters, above the maximum length {most}",
        )
    return found


def _allowed(col: ColumnSchema) -> pa.Array:
    if col.type == ColumnType.NUMERIC:
        return pa.array([float(v) for v in col.value_set or ()], pa.float64())
    text = ["true" if v is True else "false" if v is False else str(v) for v in col.value_set or ()]
    return pa.array(text, pa.string())


def _short(values: list[Any] | None, most: int = 10) -> str:
    values = list(values or ())
    shown = ", ".join(repr(v) for v in values[:most])
    return f"[{shown}{', …' if len(values) > most else ''}]"


# ---------------------------------------------------------------------- Great Expectations
def to_great_expectations(constraints: object, *, name: str = "watchkeeper") -> dict[str, Any]:
    """The constraints as a Great Expectations expectation suite (its JSON shape)."""
    doc = parse(constraints)
    expectations = []

    def expect(kind: str, column: str, **kwargs: Any) -> None:
        expectations.append(
            {"expectation_type": kind, "kwargs": {"column": column, **kwargs}, "meta": {}}
        )

    for column, rules in doc["columns"].items():
        if rules.get("min_value") is not None or rules.get("max_value") is not None:
            expect(
                "expect_column_values_to_be_between",
                column,
                min_value=rules.get("min_value"),
                max_value=rules.get("max_value"),
            )
        if rules.get("value_set") is not None:
            expect("expect_column_values_to_be_in_set", column, value_set=rules["value_set"])
        if rules.get("regex") is not None:
            expect("expect_column_values_to_match_regex", column, regex=rules["regex"])
        if rules.get("max_length") is not None:
            expect(
                "expect_column_value_lengths_to_be_between",
                column,
                min_value=None,
                max_value=rules["max_length"],
            )
        if rules.get("nullable") is False:
            expect("expect_column_values_to_not_be_null", column)
    return {
        "expectation_suite_name": name,
        "expectations": expectations,
        "meta": {"watchkeeper": {"on_violation": doc["on_violation"]}},
    }


def from_great_expectations(suite: Mapping[str, Any]) -> dict[str, Any]:
    """A constraints document from a Great Expectations suite (0.x ``expectation_type`` or
    1.x ``type`` entries). Expectations other than those in ``GE_EXPECTATIONS``, and kwargs
    that cannot be honoured per row (``mostly`` below 1, strict bounds, a minimum length),
    are refused with an error naming them."""
    raw = suite.get("expectations")
    if not isinstance(raw, list):
        raise SchemaError("Great Expectations suite: 'expectations' must be a list")
    unknown = sorted(
        {str(e.get("expectation_type", e.get("type"))) for e in raw if isinstance(e, Mapping)}
        - set(GE_EXPECTATIONS)
    )
    if unknown:
        raise SchemaError(
            f"Great Expectations suite: unsupported expectation(s) {', '.join(unknown)}; "
            f"understood: {', '.join(GE_EXPECTATIONS)}"
        )
    columns: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kwargs"), Mapping):
            raise SchemaError(f"Great Expectations suite: expectation #{i} has no kwargs")
        kind = str(entry.get("expectation_type", entry.get("type")))
        kwargs = dict(entry["kwargs"])
        column = kwargs.get("column")
        where = f"Great Expectations suite: {kind} on {column!r}"
        if not isinstance(column, str) or not column:
            raise SchemaError(f"{where}: no column")
        if kwargs.pop("mostly", 1) != 1:
            raise SchemaError(f"{where}: 'mostly' below 1 cannot be checked per row")
        for strict in ("strict_min", "strict_max"):
            if kwargs.pop(strict, False):
                raise SchemaError(f"{where}: {strict} is not supported")
        extra = sorted(set(kwargs) - _GE_IGNORED_KWARGS - set(GE_EXPECTATIONS[kind]))
        if extra:
            raise SchemaError(f"{where}: unsupported kwarg(s) {', '.join(extra)}")
        rules = columns.setdefault(column, {})
        if kind == "expect_column_values_to_be_between":
            for key in ("min_value", "max_value"):
                if kwargs.get(key) is not None:
                    rules[key] = kwargs[key]
        elif kind == "expect_column_values_to_be_in_set":
            rules["value_set"] = list(kwargs.get("value_set") or [])
        elif kind == "expect_column_values_to_match_regex":
            rules["regex"] = kwargs.get("regex")
        elif kind == "expect_column_value_lengths_to_be_between":
            if kwargs.get("min_value") not in (None, 0):
                raise SchemaError(f"{where}: a minimum length is not supported")
            if kwargs.get("max_value") is not None:
                rules["max_length"] = kwargs["max_value"]
        else:
            rules["nullable"] = False
    meta = suite.get("meta")
    policy = "quarantine"
    if isinstance(meta, Mapping) and isinstance(meta.get("watchkeeper"), Mapping):
        policy = meta["watchkeeper"].get("on_violation", policy)
    return parse({"version": VERSION, "on_violation": policy, "columns": columns})
