"""Tests for watchkeeper.io: every accepted input kind, every error, and array coercion."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyarrow import feather

from watchkeeper.errors import InputError
from watchkeeper.io import coerce_array, column_names, read_file, to_table

EXPECTED = pa.table({"x": [1.5, 2.5, None], "c": ["a", "b", "a"], "n": [1, 2, 3]})


def test_pyarrow_table_is_returned_as_is() -> None:
    assert to_table(EXPECTED) is EXPECTED


def test_record_batch() -> None:
    batch = EXPECTED.to_batches()[0]
    assert to_table(batch).equals(EXPECTED)


def test_dict_of_lists() -> None:
    table = to_table({"x": [1.5, 2.5, None], "c": ["a", "b", "a"], "n": [1, 2, 3]})
    assert table.equals(EXPECTED)


def test_dict_of_arrays_numpy_and_iterables() -> None:
    table = to_table(
        {
            "a": np.array([1.0, 2.0]),
            "b": pa.array(["u", "v"]),
            "c": pa.chunked_array([[1], [2]]),
            "d": range(2),
            "e": (v for v in [True, False]),
        }
    )
    assert table.column_names == ["a", "b", "c", "d", "e"]
    assert table.column("a").type == pa.float64()
    assert table.column("d").to_pylist() == [0, 1]
    assert table.column("e").to_pylist() == [True, False]


def test_dict_with_mixed_types_becomes_strings() -> None:
    table = to_table({"m": [1, "x", None, float("nan"), 2.5], "k": [1, 2, 3, 4, 5]})
    assert table.column("m").type == pa.string()
    assert table.column("m").to_pylist() == ["1", "x", None, None, "2.5"]
    assert table.column("k").type == pa.int64()


def test_list_of_row_dicts() -> None:
    table = to_table([{"a": 1, "b": "x"}, {"a": 2}, {"c": True}])
    assert table.column_names == ["a", "b", "c"]
    assert table.column("b").to_pylist() == ["x", None, None]


def test_empty_dict_gives_empty_table() -> None:
    assert to_table({}).num_columns == 0


def test_dict_errors() -> None:
    with pytest.raises(InputError, match=r"ref: columns have different lengths \(a=2, b=3\)"):
        to_table({"a": [1, 2], "b": [1, 2, 3]}, name="ref")
    with pytest.raises(InputError, match=r"data: column 'a': expected a sequence.*int"):
        to_table({"a": 5})
    with pytest.raises(InputError, match=r"column 'a': expected a sequence of values, got str"):
        to_table({"a": "abc"})
    with pytest.raises(InputError, match=r"column 'a': expected a 1-dimensional array"):
        to_table({"a": np.zeros((2, 2))})
    with pytest.raises(InputError, match="duplicate column names: 1"):
        to_table({1: [1], "1": [2]})


def test_pandas_dataframe_drops_index_and_keeps_types() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {"x": [1.5, 2.5, np.nan], "c": ["a", "b", None], "n": [1, 2, 3]},
        index=[10, 20, 30],
    )
    table = to_table(df)
    assert table.column_names == ["x", "c", "n"]
    assert table.column("x").to_pylist() == [1.5, 2.5, None]  # NaN is missing in pandas
    assert table.column("c").to_pylist() == ["a", "b", None]
    assert table.column("n").type == pa.int64()


def test_pandas_mixed_object_column_becomes_string() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"m": pd.Series([1, "x", None, 2.5], dtype=object), "n": [1, 2, 3, 4]})
    table = to_table(df)
    assert table.column("m").type == pa.string()
    assert table.column("m").to_pylist() == ["1", "x", None, "2.5"]
    assert table.column("n").type == pa.int64()


def test_pandas_categorical_non_string_names_and_series_in_dict() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({0: pd.Categorical(["a", "b", "a"]), "v": [1, 2, 3]})
    table = to_table(df)
    assert table.column_names == ["0", "v"]
    assert pa.types.is_dictionary(table.column("0").type)
    from_dict = to_table({"s": pd.Series([1, "y"], dtype=object), "t": pd.Series([1.0, None])})
    assert from_dict.column("s").to_pylist() == ["1", "y"]
    assert from_dict.column("t").to_pylist() == [1.0, None]


def test_pandas_errors() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InputError, match="ref: duplicate column names: a"):
        to_table(df, name="ref")
    with pytest.raises(InputError, match=r"unsupported input type pandas\..*Series"):
        to_table(pd.Series([1, 2]))


def test_polars_dataframe_and_lazyframe() -> None:
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"x": [1.5, 2.5, None], "c": ["a", "b", "a"], "n": [1, 2, 3]})
    for data in (df, df.lazy()):
        table = to_table(data)
        assert table.column_names == ["x", "c", "n"]
        assert table.column("c").to_pylist() == ["a", "b", "a"]
        assert not pa.types.is_string_view(table.column("c").type)
    from_dict = to_table({"s": pl.Series([1, 2])})
    assert from_dict.column("s").to_pylist() == [1, 2]


def test_view_types_are_normalised() -> None:
    table = pa.table({"s": pa.array(["a", None], pa.string_view())})
    out = to_table(table)
    assert out.column("s").type == pa.large_string()
    assert out.column("s").to_pylist() == ["a", None]


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ref{suffix}"
    pq.write_table(EXPECTED, path)
    assert to_table(path).equals(EXPECTED)
    assert to_table(str(path)).equals(EXPECTED)


def test_csv_files(tmp_path: Path) -> None:
    text = "x,c,n\n1.5,a,1\n2.5,b,2\n,a,3\n"
    (tmp_path / "ref.csv").write_text(text)
    (tmp_path / "ref.tsv").write_text(text.replace(",", "\t"))
    with gzip.open(tmp_path / "ref.CSV.gz", "wt") as fh:
        fh.write(text)
    for name in ("ref.csv", "ref.tsv", "ref.CSV.gz"):
        assert to_table(tmp_path / name).equals(EXPECTED), name


def test_csv_empty_string_field_is_null(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("c,d\na,1\n,2\n")
    assert to_table(tmp_path / "s.csv").column("c").to_pylist() == ["a", None]


@pytest.mark.parametrize("suffix", [".arrow", ".feather", ".ipc"])
def test_arrow_ipc_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ref{suffix}"
    feather.write_feather(EXPECTED, path)
    assert to_table(path).equals(EXPECTED)


def test_arrow_ipc_stream_file(tmp_path: Path) -> None:
    path = tmp_path / "ref.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, EXPECTED.schema) as writer:
        writer.write_table(EXPECTED)
    assert read_file(path).equals(EXPECTED)


def test_missing_file() -> None:
    with pytest.raises(InputError) as info:
        to_table("no/such/file.parquet", name="reference")
    assert str(info.value) == "reference: file not found: no/such/file.parquet"


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "ref.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match=r"data: cannot read .*ref\.xlsx: unknown file extension"):
        to_table(path)
    gz = tmp_path / "ref.parquet.gz"
    gz.write_text("x")
    with pytest.raises(InputError, match=r"unknown file extension '\.parquet\.gz'"):
        to_table(gz)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv"])
def test_unreadable_content(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"" if suffix == ".csv" else b"this is not a binary table")
    with pytest.raises(InputError, match=rf"cur: cannot read .*bad\{suffix} as "):
        to_table(path, name="cur")


def test_directory_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        to_table(folder)


def test_empty_path() -> None:
    with pytest.raises(InputError, match="data: empty path"):
        to_table("")


@pytest.mark.parametrize("value", [42, None, [1, 2], object()])
def test_unsupported_types(value: object) -> None:
    with pytest.raises(InputError) as info:
        to_table(value, name="ref")
    message = str(info.value)
    assert message.startswith(f"ref: unsupported input type {type(value).__name__}")
    assert "pandas or polars DataFrame" in message and ".parquet" in message


def test_optional_dependencies_are_not_imported() -> None:
    # (pyarrow itself imports pandas when converting Python objects, so only check our imports)
    code = (
        "import sys\n"
        "from watchkeeper.io import to_table\n"
        "from watchkeeper.schema import infer_schema\n"
        "assert 'pandas' not in sys.modules and 'polars' not in sys.modules\n"
        "infer_schema(to_table({'a': [1, 2]}))\n"
        "assert 'polars' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_works_when_pandas_and_polars_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    monkeypatch.setitem(sys.modules, "polars", None)
    assert to_table({"a": [1, "x"]}).column("a").to_pylist() == ["1", "x"]


# ------------------------------------------------------------------------- coerce_array


def test_coerce_array_numeric_from_strings() -> None:
    values = pa.array(["1", " 2.5 ", "x", None, "", "NaN", "-inf", "1,000", "1e3", ".5"])
    out, errors = coerce_array(values, "numeric")
    assert out.type == pa.float64()
    assert out.to_pylist() == [1.0, 2.5, None, None, None, None, -np.inf, None, 1000.0, 0.5]
    assert errors == 2  # "x" and "1,000"; empty and NaN strings are missing, not errors


def test_coerce_array_chunked_dictionary_and_views() -> None:
    chunked = pa.chunked_array([pa.array(["a", "b"]), pa.array(["7"])])
    out, errors = coerce_array(chunked, "numeric")
    assert out.to_pylist() == [None, None, 7.0] and errors == 2
    dict_col = pa.chunked_array([pa.array(["x", None, "x"]).dictionary_encode()])
    assert coerce_array(dict_col, "categorical")[0].to_pylist() == ["x", None, "x"]
    view = pa.array(["3", "y"], pa.string_view())
    assert coerce_array(view, "numeric")[0].to_pylist() == [3.0, None]
    empty = pa.chunked_array([], pa.int64())
    assert coerce_array(empty, "numeric")[0].to_pylist() == []


def test_coerce_array_temporal_to_numeric_seconds() -> None:
    ts = pa.array([0, 1_500_000], pa.timestamp("ms"))
    assert coerce_array(ts, "numeric")[0].to_pylist() == [0.0, 1500.0]
    dates = pa.array([0, 2], pa.date32())
    assert coerce_array(dates, "numeric")[0].to_pylist() == [0.0, 172800.0]


def test_coerce_array_datetime() -> None:
    strings = pa.array(
        ["2024-01-01", "2024-01-01T10:00:00Z", "2024-01-01 12:00:00+02:00", "2024-02-30",
         "soon", None, "", "2024-01-01T00:00:00.123456789"]
    )  # fmt: skip
    out, errors = coerce_array(strings, "datetime")
    assert out.type == pa.timestamp("us", tz="UTC")
    hours = [None if v is None else v.hour for v in out.to_pylist()]
    assert hours == [0, 10, 10, None, None, None, None, 0]
    assert errors == 2  # the impossible date and "soon"
    assert out[7].value % 1_000_000 == 123456
    naive = pa.array([1_000_000], pa.timestamp("ns"))
    assert coerce_array(naive, "datetime")[0].type == pa.timestamp("us", tz="UTC")
    epochs, bad = coerce_array(pa.array([0, 86400.5, 1e30, None]), "datetime")
    assert epochs.to_pylist()[1].day == 2 and epochs[2].as_py() is None and bad == 1


def test_coerce_array_unconvertible() -> None:
    nested = pa.array([[1], None, [2, 3]])
    out, errors = coerce_array(nested, "numeric")
    assert out.null_count == 3 and errors == 2
    binary = pa.array([b"\xff\xfe", b"ok"])
    out, errors = coerce_array(binary, "categorical")
    assert out.type == pa.string() and errors == 2
    assert coerce_array(pa.array([b"12"]), "numeric")[0].to_pylist() == [12.0]


def test_coerce_array_is_vectorised_on_large_input() -> None:
    values = pc.cast(pa.array(np.arange(1_000_000)), pa.string())
    out, errors = coerce_array(values, "numeric")
    assert errors == 0 and out.null_count == 0 and out[999_999].as_py() == 999_999.0


def test_coerce_array_unknown_kind() -> None:
    with pytest.raises(InputError, match="unknown column type 'float'"):
        coerce_array(pa.array([1]), "float")


def test_column_names_one_string_is_one_name() -> None:
    assert column_names("proba", "scores") == ["proba"]
    assert column_names(["p0", "p1"], "scores") == ["p0", "p1"]
    assert column_names(("a",), "columns") == ["a"]
    assert column_names((n for n in ("a", "b")), "columns") == ["a", "b"]
    assert column_names(None, "columns") == [] and column_names([], "columns") == []
    for bad, message in (
        (3, "scores: expected a column name or a list of names, got int"),
        (b"proba", "got bytes"),
        ({"a": 1}, "got dict"),
        (["a", 2], "column names must be strings, got 2"),
    ):
        with pytest.raises(InputError, match=message):
            column_names(bad, "scores")  # type: ignore[arg-type]
