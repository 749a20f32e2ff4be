"""Validation checks the batch's plain columns (numbers for numeric features, text for
categorical ones, no rule) together: the same accepted table, rejected rows and reasons, in
the same order, as checking every column on its own."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.ingest import validate as validation
from watchkeeper.schema import Schema

NOW = 1_750_000_000.0
SCHEMA = Schema.from_dict(
    {
        "columns": {
            "a": {"type": "numeric", "nullable": False},
            "ruled": {"type": "numeric", "min_value": 0},
            "b": {"type": "numeric"},
            "n": {"type": "numeric", "nullable": False},
            "c": {"type": "categorical", "nullable": False},
            "d": {"type": "categorical"},
            "s": {"type": "categorical", "role": "segment"},
            "pred": {"type": "categorical", "role": "prediction"},
        }
    }
)


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)

    def holes(values: list[Any], *extra: Any) -> list[Any]:
        out = list(values)
        for i in rng.choice(rows, size=min(rows, 4), replace=False):
            out[i] = extra[int(rng.integers(len(extra)))] if extra else None
        return out

    a = holes(rng.normal(0, 1, rows).tolist(), None, math.nan, math.inf, -math.inf)
    return pa.table(
        {
            "prediction_id": [f"id{i}" for i in range(rows)],
            "timestamp": [NOW - 60] * rows,
            "a": pa.array(a, pa.float64()),
            "ruled": pa.array(holes(rng.normal(0, 1, rows).tolist(), None, -3.0), pa.float64()),
            "b": pa.array(holes(rng.normal(0, 1, rows).tolist(), None, math.nan), pa.float32()),
            "n": pa.array(holes(rng.integers(0, 9, rows).tolist(), None), pa.int64()),
            "c": pa.array(holes(rng.choice(["x", "y"], rows).tolist(), None), pa.string()),
            "d": pa.array(holes(rng.choice(["x", "y"], rows).tolist()), pa.large_string()),
            "s": pa.array(rng.choice(["eu", "us"], rows).tolist(), pa.string()),
            "pred": rng.choice(["yes", "no"], rows).tolist(),
            "status": holes(["ok"] * rows, "error"),
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_plain_columns_checked_together_match_column_by_column(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table(40, seed)
    together = validation.validate(table, SCHEMA, now=NOW)
    monkeypatch.setattr(validation, "_plain", lambda raw, col: False)
    alone = validation.validate(table, SCHEMA, now=NOW)
    assert together.rejected, "the data should hold rejected rows"
    assert together.accepted.equals(alone.accepted)
    assert together.accepted.schema == alone.accepted.schema
    assert together.rejected == alone.rejected
    assert together.warnings == alone.warnings
    assert together.ignored_fields == alone.ignored_fields
