"""Input loading and column coercion: everything becomes a :class:`pyarrow.Table`.

Arrow is watchkeeper's internal format. :func:`to_table` accepts

* a pandas DataFrame (as ``Table.from_pandas(preserve_index=False)``; an object column holding
  mixed types, e.g. numbers and strings, is rendered as strings instead of failing; with
  ``dictionary_strings=True`` an object column of strings with few distinct values becomes a
  dictionary-encoded string column, which profiling counts by its codes),
* a polars DataFrame or LazyFrame (collected),
* a pyarrow Table or RecordBatch,
* a dict of columns (lists, numpy arrays, pyarrow arrays, pandas or polars Series) or a list of
  row dicts,
* a path (``str`` / ``os.PathLike``) to a ``.parquet``/``.pq``, ``.csv``/``.tsv`` (optionally
  compressed, e.g. ``.csv.gz``) or ``.arrow``/``.feather``/``.ipc`` file.

pandas and polars are optional: they are only imported to convert an object that already comes
from them (detected by ``type(obj).__module__``). View types (``string_view``,
``binary_view``) are normalised to their large equivalents. Empty CSV fields are read as null.

:func:`coerce_array` casts one column to the representation used for profiling (numeric ->
float64, categorical/id/text -> string, datetime -> ``timestamp[us, tz=UTC]``) with vectorised
pyarrow.compute kernels and counts the values that could not be converted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import InputError

__all__ = [
    "ACCEPTED_INPUTS",
    "ISO_DATETIME_RE",
    "coerce_array",
    "column_names",
    "column_values",
    "file_format",
    "read_file",
    "to_table",
]

ACCEPTED_INPUTS = (
    "a pandas or polars DataFrame, a pyarrow Table or RecordBatch, a dict of columns, "
    "a list of row dicts, or a path to a .parquet/.pq, .csv/.csv.gz/.tsv "
    "or .arrow/.feather/.ipc file"
)
_FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv",
    ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc",
}  # fmt: skip
_COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")

_DATE = r"\d{4}-\d{2}-\d{2}"
_TIME = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})"
#: Strings accepted as datetimes: ISO 8601 date, or date and time, with an optional zone.
ISO_DATETIME_RE = rf"^{_DATE}(?:[T ]{_TIME}{_ZONE}?)?$"
_ZONED_RE = rf"^{_DATE}[T ]{_TIME}{_ZONE}$"
_NUMBER_RE = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity)$"
#: Strings treated as missing (null) rather than as type errors when parsing numbers/datetimes.
_MISSING_RE = r"^(?:|nan|na|n/a|null|none)$"
_SECONDS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_UTC_US = pa.timestamp("us", tz="UTC")
_KINDS = ("numeric", "categorical", "datetime", "text", "id")


# --------------------------------------------------------------------------- names


def column_names(value: str | Iterable[str] | None, what: str) -> list[str]:
    """One or many column names as a list: a string is one name, never its characters.

    Every parameter that takes "a column or columns" goes through this. ``what`` names the
    parameter in the error raised for anything that is not a name or an iterable of names.

    >>> column_names("proba", "scores"), column_names(("p0", "p1"), "scores")
    (['proba'], ['p0', 'p1'])
    >>> column_names(None, "columns")
    []
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | Mapping) or not isinstance(value, Iterable):
        raise InputError(
            f"{what}: expected a column name or a list of names, got {_type_name(value)}"
        )
    names = list(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise InputError(f"{what}: column names must be strings, got {bad[0]!r}")
    return names


# --------------------------------------------------------------------------- loading


def to_table(data: object, *, name: str = "data", dictionary_strings: bool = False) -> pa.Table:
    """Convert ``data`` to a pyarrow Table; ``name`` prefixes every error message.

    ``dictionary_strings``: a pandas object column of strings with few distinct values comes
    back dictionary-encoded (the same values; :func:`watchkeeper.compare` and
    :func:`watchkeeper.profile` then count codes instead of hashing every string).
    """
    if isinstance(data, pa.Table):
        return _normalize(data)
    if isinstance(data, pa.RecordBatch):
        return _normalize(pa.Table.from_batches([data]))
    if isinstance(data, str | os.PathLike):
        return read_file(data, name=name)
    root = _root_module(data)
    if root == "pandas":
        return _normalize(_from_pandas(data, name, dictionary_strings))
    if root == "polars":
        return _normalize(_from_polars(data, name))
    if isinstance(data, Mapping):
        return _normalize(_from_mapping(data, name))
    if isinstance(data, list | tuple) and data and all(isinstance(r, Mapping) for r in data):
        keys = list(dict.fromkeys(k for row in data for k in row))
        return _normalize(_from_mapping({k: [row.get(k) for row in data] for k in keys}, name))
    raise _unsupported(data, name)


def read_file(path: str | os.PathLike[str], *, name: str = "data") -> pa.Table:
    """Read a Parquet, CSV/TSV (optionally compressed) or Arrow IPC/Feather file."""
    shown = os.fsdecode(path)
    if not shown:
        raise InputError(f"{name}: empty path")
    p = Path(shown).expanduser()
    if not p.exists():
        raise InputError(f"{name}: file not found: {shown}")
    fmt = file_format(p)
    if fmt is None:
        raise InputError(
            f"{name}: cannot read {shown}: unknown file extension {''.join(p.suffixes)!r}; "
            "expected .parquet/.pq, .csv/.tsv (optionally .gz/.bz2/.zst/.lz4) "
            "or .arrow/.feather/.ipc"
        )
    if p.is_dir() and fmt != "parquet":
        raise InputError(f"{name}: cannot read {shown}: is a directory, expected a {fmt} file")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(p)
        elif fmt in ("csv", "tsv"):
            from pyarrow import csv

            table = csv.read_csv(
                p,
                parse_options=csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                convert_options=csv.ConvertOptions(strings_can_be_null=True),
            )
        else:
            table = _read_ipc(p)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot read {shown} as {fmt}: {exc}") from exc
    return _normalize(table)


def file_format(path: Path) -> str | None:
    """``"parquet"``, ``"csv"``, ``"tsv"`` or ``"ipc"`` from the file name, or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        return None
    if suffixes[-1] in _COMPRESSIONS:
        inner = _FORMATS.get(suffixes[-2]) if len(suffixes) >= 2 else None
        return inner if inner in ("csv", "tsv") else None
    return _FORMATS.get(suffixes[-1])


def _read_ipc(path: Path) -> pa.Table:
    from pyarrow import feather

    try:
        return feather.read_table(path)  # Arrow IPC file format and Feather v1/v2
    except pa.ArrowInvalid as file_error:
        try:
            with pa.ipc.open_stream(path) as reader:  # Arrow IPC stream format
                return reader.read_all()
        except (pa.ArrowException, OSError):
            raise file_error from None


def _root_module(obj: object) -> str:
    """Top-level package of obj's class or one of its bases, without importing anything."""
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("pandas", "polars"):
            return root
    return ""


def _type_name(obj: object) -> str:
    cls = type(obj)
    module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
    return module + cls.__qualname__


def _unsupported(obj: object, name: str) -> InputError:
    return InputError(
        f"{name}: unsupported input type {_type_name(obj)}; expected {ACCEPTED_INPUTS}"
    )


def _from_pandas(df: Any, name: str, dictionary_strings: bool = False) -> pa.Table:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise _unsupported(df, name)
    names = _unique_names([str(c) for c in df.columns], name)
    # numpy-backed numbers (and, asked for, object strings) are converted here, column by
    # column, to the arrays Table.from_pandas makes; everything else goes through Arrow
    fast = [_fast_pandas_column(df.iloc[:, i], dictionary_strings) for i in range(df.shape[1])]
    rest = [i for i, arr in enumerate(fast) if arr is None]
    if fast and not rest:
        return pa.Table.from_arrays(fast, schema=_encoded_schema(fast, names))
    table = _pandas_frame(df.iloc[:, rest], [names[i] for i in rest])
    if len(rest) == len(fast):
        return table
    slow = dict(zip(rest, table.columns, strict=True))
    arrays = [slow[i] if arr is None else pa.chunked_array([arr]) for i, arr in enumerate(fast)]
    return pa.Table.from_arrays(arrays, schema=_encoded_schema(arrays, names))


#: Field metadata of a column that :func:`to_table` dictionary-encoded (``dictionary_strings``):
#: its dtype is still reported as the strings it was (see :func:`source_type`).
ENCODED = {b"watchkeeper": b"encoded strings"}


def _encoded_schema(arrays: Sequence[pa.Array | pa.ChunkedArray], names: list[str]) -> pa.Schema:
    return pa.schema(
        pa.field(n, a.type, metadata=ENCODED if isinstance(a, pa.DictionaryArray) else None)
        for n, a in zip(names, arrays, strict=True)
    )


def source_type(field: pa.Field) -> pa.DataType:
    """The type of a column as the caller gave it: a column that :func:`to_table` encoded
    itself counts as the strings it was."""
    if field.metadata == ENCODED and pa.types.is_dictionary(field.type):
        return field.type.value_type
    return field.type


def _pandas_frame(df: Any, names: list[str]) -> pa.Table:
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        return table if table.column_names == names else table.rename_columns(names)
    except (pa.ArrowException, TypeError, ValueError):
        pass  # some object column holds mixed types: convert column by column
    arrays = [_pandas_column(df.iloc[:, i]) for i in range(df.shape[1])]
    return pa.Table.from_arrays(arrays, names=names)


#: An object column is dictionary-encoded when a sample of it has at most this share of
#: distinct values: hashing each string once pays for itself only when they repeat.
_DICTIONARY_MAX_DISTINCT_SHARE = 0.5
_DICTIONARY_SAMPLE = 10_000


def _fast_pandas_column(series: Any, dictionary_strings: bool) -> pa.Array | None:
    """The array ``Table.from_pandas`` makes of a numpy-backed numeric column (NaN -> null,
    without the full scan when there is no NaN), or a dictionary-encoded string array of an
    object column of strings; None for anything else."""
    dtype = series.dtype
    if not isinstance(dtype, np.dtype) or not dtype.isnative:
        return None
    if dtype.kind in "iub":
        return pa.array(series.to_numpy())
    if dtype.kind == "f":
        values = series.to_numpy()
        if len(values) and np.isnan(np.min(values)):  # NaN propagates through min
            return pa.array(values, from_pandas=True)
        return pa.array(values)
    if dtype.kind == "O" and dictionary_strings:
        return _dictionary_strings(series.to_numpy())
    return None


def _dictionary_strings(values: np.ndarray[Any, Any]) -> pa.Array | None:
    import pandas as pd

    sample = values[:_DICTIONARY_SAMPLE]
    if len(pd.unique(sample)) > _DICTIONARY_MAX_DISTINCT_SHARE * max(len(sample), 1):
        return None
    codes, uniques = pd.factorize(values)  # first-appearance order; None/NaN/NA -> -1
    if pd.api.types.infer_dtype(uniques, skipna=False) != "string":
        return None  # empty, all missing, or not only str (bytes, numbers): Arrow decides
    missing = codes < 0
    indices = pa.array(codes.astype(np.int32), mask=missing if missing.any() else None)
    return pa.DictionaryArray.from_arrays(indices, pa.array(uniques, type=pa.string()))


def _pandas_column(series: Any) -> pa.Array | pa.ChunkedArray:
    try:
        return pa.Array.from_pandas(series)
    except (pa.ArrowException, TypeError, ValueError):
        mask = series.isna().to_numpy(dtype=bool)
        values = series.astype(str).to_numpy(dtype=object)
        return pa.array(values, type=pa.string(), mask=mask)


def _from_polars(obj: Any, name: str) -> pa.Table:
    import polars as pl

    try:
        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if isinstance(obj, pl.DataFrame):
            return obj.to_arrow()
    except Exception as exc:  # polars raises many exception types
        raise InputError(f"{name}: cannot convert polars data to Arrow: {exc}") from exc
    raise _unsupported(obj, name)


def _from_mapping(data: Mapping[Any, Any], name: str) -> pa.Table:
    names = _unique_names([str(k) for k in data], name)
    arrays = [
        _column_array(v, f"{name}: column {n!r}") for n, v in zip(names, data.values(), strict=True)
    ]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}={len(a)}" for n, a in zip(names, arrays, strict=True))
        raise InputError(f"{name}: columns have different lengths ({detail})")
    return pa.Table.from_arrays(arrays, names=names)


def _unique_names(names: list[str], name: str) -> list[str]:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{name}: duplicate column names: {', '.join(duplicates)}")
    return names


def _column_array(values: object, where: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    root = _root_module(values)
    if root == "pandas" and hasattr(values, "isna") and getattr(values, "ndim", 0) == 1:
        return _pandas_column(values)
    if root == "polars" and hasattr(values, "to_arrow"):
        return values.to_arrow()
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise InputError(f"{where}: expected a 1-dimensional array, got shape {values.shape}")
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InputError(f"{where}: expected a sequence of values, got {_type_name(values)}")
    items = values if isinstance(values, np.ndarray | Sequence) else list(values)
    try:
        return pa.array(items)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if _is_missing(v) else str(v) for v in items], type=pa.string())


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and bool(np.isnan(value)))


def _normalize(table: pa.Table) -> pa.Table:
    """Replace string_view/binary_view (unsupported by many kernels) by large_string/binary."""
    fields = [f.with_type(_plain_type(f.type)) for f in table.schema]
    if all(f.type == g.type for f, g in zip(fields, table.schema, strict=True)):
        return table
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, _plain_type(t.value_type), t.ordered)
    if _is_view(t, "string"):
        return pa.large_string()
    if _is_view(t, "binary"):
        return pa.large_binary()
    return t


def _is_view(t: pa.DataType, kind: str) -> bool:
    check = getattr(pa.types, f"is_{kind}_view", None)  # absent before pyarrow 16
    return bool(check(t)) if check is not None else False


# --------------------------------------------------------------------------- coercion


def column_values(table: pa.Table, name: str) -> np.ndarray[Any, Any]:
    """A column as a numpy array, a dictionary-encoded one decoded first: pyarrow's
    ``to_numpy`` of a dictionary column does not keep its nulls null."""
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def category_text(value: Any) -> str | None:
    """One categorical value as text, as the lake keeps it (:func:`coerce_array`): a boolean
    is ``"true"``/``"false"``, anything else ``str(value)``; None stays None. A served model
    gets its categorical inputs so, the same spelling it is retrained on.

    >>> category_text(True), category_text("DE"), category_text(3), category_text(None)
    ('true', 'DE', '3', None)
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def coerce_array(values: pa.Array | pa.ChunkedArray, kind: str) -> tuple[pa.Array, int]:
    """Cast a column for profiling; return ``(array, type_errors)``.

    ``kind`` is a column type name: ``"numeric"`` -> float64 (strings parsed, bools 0/1,
    datetimes as epoch seconds, NaN -> null); ``"datetime"`` -> ``timestamp[us, tz=UTC]`` (naive
    values are taken as UTC, numbers as epoch seconds, strings parsed as ISO 8601); anything else
    (``"categorical"``, ``"id"``, ``"text"``) -> string (bools as ``"true"``/``"false"``).
    Nulls stay null. Non-null values that cannot be converted become null and are counted in
    ``type_errors``; empty strings and ``nan``/``NA``/``null``/``None`` strings become null and
    are not counted.
    """
    if kind not in _KINDS:
        raise InputError(f"unknown column type {kind!r}; expected one of {', '.join(_KINDS)}")
    if isinstance(values, pa.ChunkedArray):
        arr = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    else:
        arr = values
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if _is_view(arr.type, "string") or _is_view(arr.type, "binary"):
        arr = pc.cast(arr, _plain_type(arr.type))
    if kind == "numeric":
        return _to_float(arr)
    if kind == "datetime":
        return _to_timestamp(arr)
    return _to_string(arr)


def _unconvertible(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, int]:
    return pa.nulls(len(arr), target), len(arr) - arr.null_count


def _as_text(arr: pa.Array) -> pa.Array | None:
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            return pc.cast(arr, pa.large_string())
        except pa.ArrowInvalid:  # not valid UTF-8
            return None
    return None


def _safe_cast(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast; if some value fails, bisect so only the failing values become null."""
    try:
        return pc.cast(arr, target, safe=False)
    except pa.ArrowInvalid:
        if len(arr) <= 1:
            return pa.nulls(len(arr), target)
        mid = len(arr) // 2
        halves = [_safe_cast(arr.slice(0, mid), target), _safe_cast(arr.slice(mid), target)]
        return pa.concat_arrays(halves)


def _parse_strings(text: pa.Array, pattern: str) -> tuple[pa.Array, pa.Array, int]:
    """Trim, null out missing markers and values not matching pattern; count the latter."""
    trimmed = pc.utf8_trim_whitespace(text)
    missing = pc.match_substring_regex(trimmed, _MISSING_RE, ignore_case=True)
    ok = pc.match_substring_regex(trimmed, pattern, ignore_case=True)
    errors = pc.sum(pc.and_(pc.invert(ok), pc.invert(missing))).as_py() or 0
    return pc.if_else(ok, trimmed, pa.scalar(None, trimmed.type)), ok, int(errors)


def _nan_to_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)


def _epoch_seconds(arr: pa.Array) -> pa.Array | None:
    t = arr.type
    if pa.types.is_date32(t):
        return pc.multiply(pc.cast(pc.cast(arr, pa.int32()), pa.float64()), 86400.0)
    if pa.types.is_date64(t):
        return pc.divide(pc.cast(pc.cast(arr, pa.int64()), pa.float64()), 1e3)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        raw = pc.cast(arr, pa.int64() if t.bit_width == 64 else pa.int32())
        return pc.divide(pc.cast(raw, pa.float64()), _SECONDS[t.unit])
    return None


def _to_float(arr: pa.Array) -> tuple[pa.Array, int]:
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.float64()), 0
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64(), safe=False), 0
    if pa.types.is_floating(t):
        return _nan_to_null(pc.cast(arr, pa.float64())), 0
    seconds = _epoch_seconds(arr)
    if seconds is not None:
        return seconds, 0
    text = _as_text(arr)
    if text is None:
        return _unconvertible(arr, pa.float64())
    candidates, _, errors = _parse_strings(text, _NUMBER_RE)
    out = _nan_to_null(_safe_cast(candidates, pa.float64()))
    return out, errors + (out.null_count - candidates.null_count)


def _to_string(arr: pa.Array) -> tuple[pa.Array, int]:
    t = arr.type
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "true", "false"), 0
    if pa.types.is_floating(t):
        arr = _nan_to_null(arr)
    text = _as_text(arr)
    if text is not None:
        return pc.cast(text, pa.string()), 0
    try:
        return pc.cast(arr, pa.string()), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _unconvertible(arr, pa.string())


def _to_timestamp(arr: pa.Array) -> tuple[pa.Array, int]:
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), _UTC_US), 0
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if not (pa.types.is_timestamp(t) and t.tz):
            arr = pc.cast(arr, pa.timestamp("us"), safe=False)
        return pc.cast(arr, _UTC_US, safe=False), 0
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        seconds = _nan_to_null(pc.cast(arr, pa.float64(), safe=False))
        in_range = pc.less(pc.abs(seconds), 1e11)  # about +-3000 years around 1970
        micros = pc.if_else(in_range, pc.multiply(seconds, 1e6), pa.scalar(None, pa.float64()))
        out = pc.cast(pc.cast(micros, pa.int64(), safe=False), _UTC_US)
        return out, out.null_count - seconds.null_count
    text = _as_text(arr)
    if text is None:
        return _unconvertible(arr, _UTC_US)
    candidates, _, errors = _parse_strings(text, ISO_DATETIME_RE)
    candidates = pc.replace_substring_regex(candidates, r"(\.\d{6})\d+", r"\1")  # ns -> us
    zoned = pc.match_substring_regex(candidates, _ZONED_RE)
    null_text = pa.scalar(None, candidates.type)
    aware = _safe_cast(pc.if_else(zoned, candidates, null_text), _UTC_US)
    naive = _safe_cast(pc.if_else(zoned, null_text, candidates), pa.timestamp("us"))
    out = pc.coalesce(aware, pc.cast(naive, _UTC_US))
    return out, errors + (out.null_count - candidates.null_count)
