"""The same data in the forms users have it gives the same report.

pandas with plain object strings, pandas with ``category`` columns and pyarrow Tables take
different conversion paths (object strings are dictionary-encoded by ``pd.factorize``, a
pandas categorical arrives as a dictionary of large strings, an Arrow string column is
hashed); the report must not show which one ran: ``to_dict()`` is equal but for the time it
was made.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import watchkeeper
from watchkeeper.io import to_table

N = 6_000


def _objects(rng: np.random.Generator, n: int, letters: str, nulls: float) -> np.ndarray:
    # distinct str objects for equal values, as a CSV reader or a join may leave them
    values = np.array([str(c) + "" for c in rng.choice(list(letters), n)], dtype=object)
    values[rng.random(n) < nulls] = None
    return values


def _frames(seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, N)
    x[rng.random(N) < 0.01] = np.nan
    label = rng.choice(["no", "yes"], N).astype(object)
    predicted = np.where(rng.random(N) < 0.8, label, np.where(label == "yes", "no", "yes"))
    label[rng.random(N) < 0.05] = None  # labels not arrived yet
    # dtype=object: pandas 3 would make the string columns its own string dtype
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 40, N),
            "flag": rng.random(N) < 0.3 + shift / 10,
            "city": pd.Series(_objects(rng, N, "abcdefgh" + "z" * (shift > 0), 0.02), dtype=object),
            "plan": pd.Series(_objects(rng, N, "pqr", 0.0), dtype=object),
            "label": pd.Series(label, dtype=object),
            "predicted": pd.Series(predicted, dtype=object),
        }
    )


def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in ("city", "plan", "label", "predicted"):
        out[col] = out[col].astype("category")
    return out


def _arrow(df: pd.DataFrame) -> pa.Table:
    columns: dict[str, Any] = {}
    for col in df.columns:
        values = df[col].to_numpy()
        if values.dtype == object:
            columns[col] = pa.array(values, type=pa.string())
        elif values.dtype.kind == "f":
            columns[col] = pa.array(values, from_pandas=True)
        else:
            columns[col] = pa.array(values)
    return pa.table(columns)


def _report(reference: object, current: object) -> dict[str, Any]:
    """The report but for its time; the Arrow type of each column (which the schema records,
    and which differs between the forms) is set apart under "dtypes"."""
    out = watchkeeper.compare(
        reference, current, target="label", prediction="predicted", reference_chunks=4
    ).to_dict()
    out.pop("created_at")
    out["dtypes"] = {c["name"]: c.pop("dtype") for c in out["schema"]["columns"]}
    return out


def test_object_categorical_and_arrow_inputs_give_the_same_report() -> None:
    ref, cur = _frames(1, 0.0), _frames(2, 0.3)
    assert ref["city"].dtype == object and cur["label"].isna().any()
    plain = _report(ref, cur)
    assert plain["drift"]["city"]["drifted"] and plain["performance"] is not None
    # the object columns are reported as the strings they are, not as their encoding
    assert plain.pop("dtypes")["city"] == "string"
    for other in (
        _report(_categorical(ref), _categorical(cur)),
        _report(_arrow(ref), _arrow(cur)),
        _report(_categorical(ref), cur),  # the forms mix
    ):
        other.pop("dtypes")
        assert other == plain


def test_dictionary_strings_keep_every_value() -> None:
    values = np.array(["b", None, "a", "b", np.nan, "ä\x00z", "a"] * 10, dtype=object)
    df = pd.DataFrame({"s": pd.Series(values, dtype=object)})
    encoded = to_table(df, dictionary_strings=True).column("s")
    assert pa.types.is_dictionary(encoded.type)
    assert encoded.cast(pa.string()).to_pylist() == ["b", None, "a", "b", None, "ä\x00z", "a"] * 10
    assert encoded.cast(pa.string()).equals(to_table(df).column("s").cast(pa.string()))


@pytest.mark.parametrize(
    "values",
    [
        [b"a", b"b", b"a"],  # bytes: Arrow makes them binary
        ["a", 1, "a"],  # mixed: rendered as strings
        [None, None, None],  # nothing but missing values
    ],
)
def test_dictionary_strings_leave_other_object_columns_to_arrow(values: list[object]) -> None:
    df = pd.DataFrame({"s": pd.Series(values, dtype=object)})
    assert to_table(df, dictionary_strings=True).equals(to_table(df))


def test_mostly_distinct_strings_are_not_dictionary_encoded() -> None:
    df = pd.DataFrame({"id": pd.Series([f"row-{i}" for i in range(1000)], dtype=object)})
    assert to_table(df, dictionary_strings=True).column("id").type == pa.string()


def test_numeric_columns_convert_as_arrow_does() -> None:
    df = pd.DataFrame(
        {
            "f": [1.5, np.nan, 3.0],
            "g": np.array([1.0, 2.0, 3.0], dtype=np.float32),
            "i": np.array([1, 2, 3], dtype=np.uint16),
            "b": [True, False, True],
            "t": pd.to_datetime(["2026-01-01", None, "2026-01-03"]),
        }
    )
    table = to_table(df)
    assert table.column("f").null_count == 1
    assert table.equals(pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata())


def test_the_current_datas_input_error_comes_first() -> None:
    # the current data is converted while the reference is profiled; its error still wins
    ref = _frames(1, 0.0)
    with pytest.raises(watchkeeper.errors.InputError, match=r"^current: unsupported input"):
        watchkeeper.compare(ref, object(), columns=["not_a_column"])
    with pytest.raises(watchkeeper.errors.InputError, match=r"^current: unsupported input"):
        watchkeeper.compare(ref, object(), target="not_a_column")
    with pytest.raises(watchkeeper.errors.InputError, match=r"^current: unsupported input"):
        watchkeeper.compare(ref, object())
