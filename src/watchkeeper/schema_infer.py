"""Schema inference: a :class:`~watchkeeper.schema.Schema` from a reference table.

Inference rules of :func:`infer_schema` (explicit arguments always win, see below):

* float / decimal / duration -> ``numeric``; boolean -> ``categorical``;
  timestamp / date / time -> ``datetime``; all-null -> ``categorical``.
* integer -> ``id`` if id-like (below); else ``categorical`` if it has at most
  ``max_categorical_integer_cardinality`` distinct values and either at most 2 distinct values or
  every value occurring on average at least 3 times (so a tiny reference of distinct ints stays
  numeric); else ``numeric``.
* string / dictionary of strings -> ``datetime`` if every sampled value is an ISO 8601 date or
  date-time, or every one a date in another common form (see *time columns*); ``id`` if
  id-like; ``text`` if free text; ``id`` if near-unique (below); else ``categorical``. A
  dictionary of non-string values -> ``categorical``; binary and nested types -> ``text``.
* time columns that are not ISO strings: month names (``May``, ``January``, ``Sept.``), dates
  such as ``05/20/1987``, ``20.05.1987``, ``1987/05/20``, ``1987-05``, ``May 20, 1987`` or
  ``20 May 1987`` (with an optional time of day), and integer years: an integer column whose
  values all lie in 1800..2200 and that is named like a year (a last name token ``year``,
  ``yr`` or ``yyyy``) or would otherwise be an id (one row per year). They are ``datetime``.
* near-unique strings (ticket numbers, cabin codes): with at least 50 distinct values and
  distinct/non-null >= 0.5 they are ids: as categories, most values would be seen once.
* id-like: the name looks like an id (``id``, ``*_id``, ``*Id``, ``uuid``, ``guid``,
  ``identifier``) and the column is high-cardinality (more than
  ``max_categorical_integer_cardinality`` distinct values and distinct/non-null >= 0.5 or more
  than 1000 distinct); or, with more than 50 non-null values, distinct/non-null >= 0.95 and - for
  integers - the values span a near-consecutive range (max - min < 2 x distinct, as row numbers
  and auto-increment keys do; unique integer measurements stay numeric). Id columns get role ``id``.
* free text: strings with distinct/non-null >= 0.5, at least 20 distinct values, and on average
  at least 2 spaces, or at least 40 characters and 1 space.
  Long strings without spaces (hashes, tokens) are therefore ids, not text.
* If no ``timestamp`` is named and exactly one column has type ``datetime``, it gets role
  ``timestamp``.
* ``nullable`` is true when the reference column has nulls (or NaN).
* ``drift`` is true only for role ``feature`` or ``segment`` with type ``numeric`` or
  ``categorical``: target, prediction, score, id and timestamp columns and datetime/id/text
  columns are not drift features by default (set ``drift=True`` with
  :meth:`~watchkeeper.schema.Schema.with_overrides` to monitor e.g. prediction drift).

* With ``exclude_lookalikes=True`` a column no argument names that looks like a model's score
  or an epoch time is not made a feature (:mod:`watchkeeper.schema_roles` has the rules).

Explicit arguments: ``target``/``prediction``/``scores``/``id_columns``/``timestamp``/``segments``
/``features``/``ignore`` set roles (scores are numeric, timestamps datetime, segments categorical,
id columns id; target and prediction are never typed id/text, nor a column given as a feature,
which is categorical when id-like); ``categorical``/``numeric``/``text``/``datetime`` force types;
``exclude`` turns drift off. Naming a column that does not exist, or one column in two role
arguments, raises :class:`~watchkeeper.errors.SchemaError`. :func:`explain_schema` also returns
the reason for each column's role.

Speed: distinct counts (``pyarrow.compute.count_distinct``), date and text checks run on a fixed
random sample of ``sample_size`` non-null values (all when fewer; high-cardinality hash tables
are what is slow); low integer cardinalities and the consecutive-range check are then exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper import schema_roles  # its functions are read at call time: an import cycle
from watchkeeper.errors import SchemaError
from watchkeeper.io import ISO_DATETIME_RE, column_names, source_type, to_table
from watchkeeper.schema import ColumnSchema, ColumnType, Role, Schema, _not_found, default_drift

__all__ = ["explain_schema", "infer_schema"]

_SAMPLE_SIZE = 10_000
_ID_NAME_TOKENS = frozenset({"id", "uuid", "guid", "identifier"})
_YEAR_NAME_TOKENS = frozenset({"year", "yr", "yyyy"})
YEARS = (1800, 2200)
NEAR_UNIQUE_RATIO, NEAR_UNIQUE_DISTINCT = 0.5, 50
_MON = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
MONTH_RE = rf"(?i)^\s*{_MON}\s*$"
_CLOCK = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[ap]\.?m\.?)?)?"
#: Dates that are not ISO 8601: 05/20/1987, 20.05.1987, 1987/05/20, 1987-05, May 20, 1987 ...
OTHER_DATE_RE = (
    r"(?i)^\s*(?:\d{1,2}[/-]\d{1,2}[/-](?:\d{2}|\d{4})|\d{1,2}\.\d{1,2}\.\d{4}"
    r"|\d{4}/\d{1,2}/\d{1,2}|\d{4}-\d{1,2}-\d{1,2}|\d{4}[-/]\d{1,2}"
    rf"|\d{{1,2}}\s+{_MON},?\s+\d{{4}}|{_MON}\s+\d{{1,2}},?\s+\d{{4}}|{_MON}[\s-]+\d{{4}})"
    rf"{_CLOCK}\s*$"
)
# formats tried, in order, to put such dates in time order (the first that reads every value)
_DATE_FORMATS = (
    "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y",
    "%Y/%m/%d", "%Y-%m-%d", "%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y",
)  # fmt: skip


def _year_like_name(name: str) -> bool:
    tokens = re.split(r"[^0-9a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return bool(tokens) and tokens[-1] in _YEAR_NAME_TOKENS


def _all_years(col: pa.ChunkedArray) -> bool:
    lo, hi = (v.as_py() for v in pc.min_max(col).values())
    return lo is not None and YEARS[0] <= lo and hi <= YEARS[1]


def _all_match(values: pa.Array | pa.ChunkedArray, pattern: str) -> bool:
    return bool(len(values)) and bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


def time_sort_key(col: pa.ChunkedArray) -> pa.Array | None:
    """Values that sort a time column in time order: the column itself when it sorts so
    (temporal, numeric, ISO strings), the dates parsed when they are in a common other form,
    or None when no order can be read (month names without a year)."""
    t = col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    text = pc.utf8_trim_whitespace(col.combine_chunks())
    valid = text.drop_null()
    if _all_match(valid, ISO_DATETIME_RE):
        return text
    for fmt in _DATE_FORMATS:
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        if parsed.null_count == text.null_count:
            return parsed
    return None


def _id_like_name(name: str) -> bool:
    tokens = re.split(r"[^0-9a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return bool(tokens) and tokens[-1] in _ID_NAME_TOKENS


def _is_text_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _infer_type(
    name: str,
    col: pa.ChunkedArray,
    max_card: int,
    sample_size: int,
    why: dict[str, str] | None = None,
) -> ColumnType:
    """The column's type; ``why`` gets a reason for the less obvious ones."""
    why = {} if why is None else why
    t = col.type
    if pa.types.is_dictionary(t):
        if not _is_text_type(t.value_type):
            return ColumnType.CATEGORICAL
    elif pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_duration(t):
        return ColumnType.NUMERIC
    elif pa.types.is_boolean(t) or pa.types.is_null(t):
        return ColumnType.CATEGORICAL
    elif pa.types.is_temporal(t):
        return ColumnType.DATETIME
    elif not (pa.types.is_integer(t) or _is_text_type(t)):
        return ColumnType.TEXT
    non_null = len(col) - col.null_count
    if non_null == 0:
        return ColumnType.NUMERIC if pa.types.is_integer(t) else ColumnType.CATEGORICAL
    values = col.drop_null() if col.null_count else col
    if len(values) > sample_size:  # a fixed random sample of the non-null values
        rng = np.random.default_rng(0)
        values = values.take(np.sort(rng.choice(len(values), sample_size, replace=False)))
    if pa.types.is_dictionary(t):
        values = pc.cast(values, t.value_type)
    distinct = pc.count_distinct(values).as_py()
    ratio = distinct / max(len(values), 1)
    named_id = _id_like_name(name) and distinct > max_card and (ratio >= 0.5 or distinct > 1000)
    unique = non_null > 50 and ratio >= 0.95
    if pa.types.is_integer(t):
        dense = not named_id and unique and _dense_unique(col, non_null)
        if (_year_like_name(name) or dense) and _all_years(col):
            why[name] = "integer years"
            return ColumnType.DATETIME
        if named_id or dense:
            return ColumnType.ID
        if distinct <= max_card and len(values) < non_null:
            distinct = pc.count_distinct(col).as_py()  # cheap: few distinct values
        small = distinct <= max_card and (distinct <= 2 or non_null >= 3 * distinct)
        return ColumnType.CATEGORICAL if small else ColumnType.NUMERIC
    values = pc.cast(values, pa.large_string())
    if _all_match(values, ISO_DATETIME_RE):
        return ColumnType.DATETIME
    for pattern, what in ((MONTH_RE, "month names"), (OTHER_DATE_RE, "dates, not ISO 8601")):
        if _all_match(values, pattern):
            why[name] = what
            return ColumnType.DATETIME
    if named_id:
        return ColumnType.ID
    if ratio >= 0.5 and distinct >= 20:
        length = pc.mean(pc.utf8_length(values)).as_py()
        spaces = pc.mean(pc.count_substring(values, " ")).as_py()
        if spaces >= 2 or (length >= 40 and spaces >= 1):
            return ColumnType.TEXT
    if unique:
        return ColumnType.ID
    if ratio >= NEAR_UNIQUE_RATIO and distinct >= NEAR_UNIQUE_DISTINCT:
        why[name] = f"most values distinct ({ratio:.0%})"
        return ColumnType.ID
    return ColumnType.CATEGORICAL


def _has_nan(col: pa.ChunkedArray) -> bool:
    """Whether a float column without nulls holds a NaN: its minimum is NaN then, as numpy
    propagates it (one read of the column, no mask built)."""
    return any(len(c) and bool(np.isnan(np.min(c.to_numpy()))) for c in col.chunks)


def _dense_unique(col: pa.ChunkedArray, non_null: int) -> bool:
    """Integers (nearly) all distinct within a range < 2 x count: row numbers, serial keys."""
    lo, hi = (v.as_py() for v in pc.min_max(col).values())
    if hi - lo >= 2 * non_null:
        return False
    ints = col.drop_null()
    ints = ints if ints.type == pa.uint64() else pc.cast(ints, pa.int64())
    offsets = pc.subtract(ints, pa.scalar(lo, ints.type)).to_numpy()
    seen = np.zeros(hi - lo + 1, dtype=bool)
    seen[offsets] = True  # exact distinct count of a narrow integer range, in O(n)
    return int(seen.sum()) >= 0.95 * non_null


def infer_schema(
    table: pa.Table,
    *,
    target: str | None = None,
    prediction: str | Sequence[str] | None = None,
    scores: str | Sequence[str] | None = None,
    id_columns: str | Sequence[str] = (),
    timestamp: str | None = None,
    segments: str | Sequence[str] = (),
    features: str | Sequence[str] = (),
    ignore: str | Sequence[str] = (),
    categorical: str | Sequence[str] = (),
    numeric: str | Sequence[str] = (),
    text: str | Sequence[str] = (),
    datetime: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    max_categorical_integer_cardinality: int = 20,
    infer_ids: bool = True,
    infer_timestamp: bool = True,
    exclude_lookalikes: bool = False,
    sample_size: int = _SAMPLE_SIZE,
) -> Schema:
    """Infer a :class:`Schema` from a reference table (see the module docstring for the rules).

    ``table`` may be anything :func:`watchkeeper.io.to_table` accepts. ``infer_ids=False`` keeps
    unnamed id-like columns as ordinary features; ``infer_timestamp=False`` leaves the timestamp
    role to the ``timestamp`` argument. ``exclude_lookalikes=True`` keeps columns that look like
    a model's score or an epoch time out of the features (:mod:`watchkeeper.schema_roles`).
    :func:`explain_schema` takes the same arguments and also says why each column got its role.
    """
    return explain_schema(
        table, target=target, prediction=prediction, scores=scores, id_columns=id_columns,
        timestamp=timestamp, segments=segments, features=features, ignore=ignore,
        categorical=categorical, numeric=numeric, text=text, datetime=datetime,
        exclude=exclude, infer_ids=infer_ids, infer_timestamp=infer_timestamp,
        max_categorical_integer_cardinality=max_categorical_integer_cardinality,
        exclude_lookalikes=exclude_lookalikes, sample_size=sample_size,
    )[0]  # fmt: skip


def explain_schema(
    table: pa.Table,
    *,
    target: str | None = None,
    prediction: str | Sequence[str] | None = None,
    scores: str | Sequence[str] | None = None,
    id_columns: str | Sequence[str] = (),
    timestamp: str | None = None,
    segments: str | Sequence[str] = (),
    features: str | Sequence[str] = (),
    ignore: str | Sequence[str] = (),
    categorical: str | Sequence[str] = (),
    numeric: str | Sequence[str] = (),
    text: str | Sequence[str] = (),
    datetime: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    max_categorical_integer_cardinality: int = 20,
    infer_ids: bool = True,
    infer_timestamp: bool = True,
    exclude_lookalikes: bool = False,
    sample_size: int = _SAMPLE_SIZE,
) -> tuple[Schema, dict[str, str]]:
    """:func:`infer_schema`, and the reason for each column's role, by column name: e.g.
    ``"given as target"``, ``"named like an id, many distinct values"``, ``"named like a score,
    values in [0, 1], beside the binary prediction 'pred'"``."""
    if not isinstance(table, pa.Table):
        table = to_table(table, name="reference")
    available = table.column_names
    roles: dict[str, Role] = {}
    given: dict[str, str] = {}  # column -> the argument that gave its role
    forced: dict[str, ColumnType] = {}
    role_args: list[tuple[str, str | Sequence[str] | None, Role]] = [
        ("target", target, Role.TARGET), ("prediction", prediction, Role.PREDICTION),
        ("scores", scores, Role.SCORE), ("id_columns", id_columns, Role.ID),
        ("timestamp", timestamp, Role.TIMESTAMP), ("segments", segments, Role.SEGMENT),
        ("features", features, Role.FEATURE), ("ignore", ignore, Role.IGNORED),
    ]  # fmt: skip
    type_args: list[tuple[str, str | Sequence[str], ColumnType]] = [
        ("categorical", categorical, ColumnType.CATEGORICAL), ("text", text, ColumnType.TEXT),
        ("numeric", numeric, ColumnType.NUMERIC), ("datetime", datetime, ColumnType.DATETIME),
        ("id_columns", id_columns, ColumnType.ID),
    ]  # fmt: skip
    excluded = set(column_names(exclude, "exclude"))
    for name in sorted(excluded - set(available)):
        raise SchemaError(f"exclude: {_not_found(name, available)}")
    for arg, names, role in role_args:
        for name in _known(names, arg, available):
            if roles.setdefault(name, role) != role:
                raise SchemaError(f"column {name!r} is given as both {given[name]} and {arg}")
            given.setdefault(name, arg)
    for arg, names, kind in type_args:
        for name in _known(names, arg, available):
            if forced.setdefault(name, kind) != kind:
                raise SchemaError(f"column {name!r} is given two types: {forced[name]} and {kind}")
    columns: list[ColumnSchema] = []
    reasons: dict[str, str] = {}
    why: dict[str, str] = {}  # what made an inferred type, when it is not plain
    for name in available:
        col = table.column(name)
        role = roles.get(name, Role.FEATURE)
        ctype = forced.get(name) or _ROLE_TYPES.get(role)
        if ctype is None:
            ctype = _infer_type(name, col, max_categorical_integer_cardinality, sample_size, why)
            if ctype == ColumnType.ID and name not in roles and infer_ids:
                role = Role.ID
                named = _id_like_name(name)
                reasons[name] = "named like an id, " if named else ""
                reasons[name] += (
                    "many distinct values"
                    if named
                    else why.get(name, "nearly every value distinct")
                )
            elif ctype == ColumnType.DATETIME and name in why:
                reasons[name] = why[name]
            elif (ctype in (ColumnType.ID, ColumnType.TEXT) and role not in _KEEP_TYPE) or (
                ctype == ColumnType.ID and role in _KEEP_TYPE
            ):
                ctype = ColumnType.CATEGORICAL
        if name in given:
            reasons[name] = "given in ignore" if role == Role.IGNORED else f"given as {given[name]}"
        nullable = col.null_count > 0 or (pa.types.is_floating(col.type) and _has_nan(col))
        drift = default_drift(ctype, role) and name not in excluded
        dtype = str(source_type(table.schema.field(name)))
        columns.append(ColumnSchema(name, ctype, role, nullable, drift, dtype))
    datetimes = [c for c in columns if c.type == ColumnType.DATETIME]
    if (
        timestamp is None
        and infer_timestamp
        and [(c.role, c.name in roles) for c in datetimes] == [(Role.FEATURE, False)]
    ):
        datetimes[0].role = Role.TIMESTAMP
        what = why.get(datetimes[0].name)
        reasons[datetimes[0].name] = "the only date/time column" + (f" ({what})" if what else "")
    if exclude_lookalikes:
        reasons |= schema_roles.settle_lookalikes(
            table, columns, given, scores_given=bool(column_names(scores, "scores")),
            prediction=column_names(prediction, "prediction"), target=target,
        )  # fmt: skip
    for c in columns:
        reasons[c.name] = _feature_reason(c, reasons.get(c.name), c.name in excluded)
    return Schema.from_columns(columns), reasons


def _known(names: str | Sequence[str] | None, arg: str, available: list[str]) -> list[str]:
    """The names an argument gives, each checked to be a column of the reference."""
    out = column_names(names, arg)
    for name in out:
        if name not in available:
            raise SchemaError(f"{arg}: {_not_found(name, available)}")
    return out


def _feature_reason(col: ColumnSchema, reason: str | None, excluded: bool) -> str:
    """The reason shown for a column: what made its role, and what a feature's data means."""
    if col.role not in (Role.FEATURE, Role.SEGMENT):
        return reason or col.role.value
    kind = {
        ColumnType.NUMERIC: "numeric", ColumnType.CATEGORICAL: "categorical",
        ColumnType.TEXT: "free text, no drift check",
        ColumnType.DATETIME: "date/time, no drift check", ColumnType.ID: "id, no drift check",
    }[col.type]  # fmt: skip
    parts = [kind]
    if excluded:
        parts.append("drift off (exclude)")
    if col.type in (ColumnType.NUMERIC, ColumnType.CATEGORICAL):
        parts.append("optional (nulls in the reference)" if col.nullable else "required (no nulls)")
    return f"{reason or 'inferred'}: {', '.join(parts)}"


# roles whose column keeps its inferred type, but never type id: ordinary features
_KEEP_TYPE = (Role.FEATURE, Role.IGNORED)
_ROLE_TYPES = {
    Role.SCORE: ColumnType.NUMERIC, Role.ID: ColumnType.ID,
    Role.TIMESTAMP: ColumnType.DATETIME, Role.SEGMENT: ColumnType.CATEGORICAL,
}  # fmt: skip
