"""Column schema: each column's type, role and drift flag, inferred from a reference table.

Inference rules of :func:`infer_schema` (explicit arguments always win, see below):

* float / decimal / duration -> ``numeric``; boolean -> ``categorical``;
  timestamp / date / time -> ``datetime``; all-null -> ``categorical``.
* integer -> ``id`` if id-like (below); else ``categorical`` if it has at most
  ``max_categorical_integer_cardinality`` distinct values and either at most 2 distinct values or
  every value occurring on average at least 3 times (so a tiny reference of distinct ints stays
  numeric); else ``numeric``.
* string / dictionary of strings -> ``datetime`` if every sampled value is an ISO 8601 date or
  date-time; ``id`` if id-like; ``text`` if free text; else ``categorical``. A dictionary of
  non-string values -> ``categorical``; binary and nested types -> ``text``.
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
  :meth:`Schema.with_overrides` to monitor e.g. prediction drift).

Explicit arguments: ``target``/``prediction``/``scores``/``id_columns``/``timestamp``/``segments``
set roles (scores are numeric, timestamps datetime, segments categorical, id columns id; target and
prediction are never typed id/text); ``categorical``/``numeric``/``text``/``datetime`` force types;
``exclude`` turns drift off. Naming a column that does not exist raises :class:`SchemaError`.

Speed: distinct counts (``pyarrow.compute.count_distinct``), date and text checks run on a fixed
random sample of ``sample_size`` non-null values (all when fewer; high-cardinality hash tables
are what is slow); low integer cardinalities and the consecutive-range check are then exact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from watchkeeper.errors import SchemaError
from watchkeeper.io import ISO_DATETIME_RE, coerce_array, to_table

__all__ = ["ColumnSchema", "ColumnType", "Role", "Schema"]
__all__ += ["coerce_column", "default_drift", "infer_schema"]

SCHEMA_VERSION = 1
_SAMPLE_SIZE = 10_000
_ID_NAME_TOKENS = frozenset({"id", "uuid", "guid", "identifier"})
_E = TypeVar("_E", bound=StrEnum)


class ColumnType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    TEXT = "text"
    ID = "id"


class Role(StrEnum):
    FEATURE = "feature"
    PREDICTION = "prediction"
    SCORE = "score"
    TARGET = "target"
    ID = "id"
    TIMESTAMP = "timestamp"
    SEGMENT = "segment"


_DRIFT_TYPES = (ColumnType.NUMERIC, ColumnType.CATEGORICAL)


def default_drift(type: ColumnType, role: Role) -> bool:
    """Whether a column of this type and role is a drift feature unless told otherwise."""
    return role in (Role.FEATURE, Role.SEGMENT) and type in _DRIFT_TYPES


def _enum(cls: type[_E], value: object, what: str) -> _E:
    try:
        return cls(value)  # type: ignore[arg-type]  # ValueError unless a member
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise SchemaError(f"{what}: invalid value {value!r}; expected one of {allowed}") from None


@dataclass
class ColumnSchema:
    """One column: its type for profiling, its role, and whether it is monitored for drift."""

    name: str
    type: ColumnType
    role: Role = Role.FEATURE
    nullable: bool = True
    drift: bool = True  # included in drift detection
    dtype: str | None = None  # the arrow dtype seen in the reference, informational

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SchemaError(f"column name must be a non-empty string, got {self.name!r}")
        self.type = _enum(ColumnType, self.type, f"column {self.name!r}: type")
        self.role = _enum(Role, self.role, f"column {self.name!r}: role")
        for flag in ("nullable", "drift"):
            if not isinstance(getattr(self, flag), bool):
                raise SchemaError(f"column {self.name!r}: {flag} must be true or false")
        if self.dtype is not None and not isinstance(self.dtype, str):
            raise SchemaError(f"column {self.name!r}: dtype must be a string or null")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "type": self.type.value, "role": self.role.value}


_FIELDS = tuple(f.name for f in dataclasses.fields(ColumnSchema))


@dataclass
class Schema:
    """The columns of a monitored dataset, in column order."""

    columns: dict[str, ColumnSchema] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, col in self.columns.items():
            if not isinstance(col, ColumnSchema) or col.name != key:
                raise SchemaError(f"schema entry {key!r} must be a ColumnSchema named {key!r}")
        for role in (Role.TARGET, Role.TIMESTAMP):
            named = [c.name for c in self.by_role(role)]
            if len(named) > 1:
                raise SchemaError(f"at most one {role} column is allowed, got {', '.join(named)}")

    @classmethod
    def from_columns(cls, columns: Sequence[ColumnSchema]) -> Schema:
        names = [c.name for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError(f"duplicate columns in schema: {', '.join(duplicates)}")
        return cls({c.name: c for c in columns})

    def __getitem__(self, name: str) -> ColumnSchema:
        try:
            return self.columns[name]
        except KeyError:
            raise SchemaError(_not_found(name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[ColumnSchema]:
        return iter(self.columns.values())

    def __len__(self) -> int:
        return len(self.columns)

    def names(self) -> list[str]:
        return list(self.columns)

    def by_role(self, role: Role | str) -> list[ColumnSchema]:
        wanted = _enum(Role, role, "role")
        return [c for c in self.columns.values() if c.role == wanted]

    def by_type(self, type: ColumnType | str) -> list[ColumnSchema]:
        wanted = _enum(ColumnType, type, "type")
        return [c for c in self.columns.values() if c.type == wanted]

    def drift_columns(self) -> list[ColumnSchema]:
        """Columns monitored for drift: drift flag set, numeric or categorical, not id/timestamp."""
        return [
            c
            for c in self.columns.values()
            if c.drift and c.type in _DRIFT_TYPES and c.role not in (Role.ID, Role.TIMESTAMP)
        ]

    @property
    def target(self) -> str | None:
        return next((c.name for c in self.by_role(Role.TARGET)), None)

    @property
    def timestamp(self) -> str | None:
        return next((c.name for c in self.by_role(Role.TIMESTAMP)), None)

    def with_overrides(
        self,
        overrides: Mapping[str, Mapping[str, Any] | ColumnSchema] | None = None,
        /,
        **by_column: Mapping[str, Any] | ColumnSchema,
    ) -> Schema:
        """Return a copy with fields replaced: ``with_overrides({"age": {"type": "numeric"}})``.

        Each value is a mapping of ColumnSchema fields (all but ``name``) or a whole
        ColumnSchema. If ``type`` or ``role`` changes and ``drift`` is not given, a drift flag
        that was at its default is recomputed for the new type and role.
        """
        columns = dict(self.columns)
        for name, change in {**(overrides or {}), **by_column}.items():
            old = self[name]
            if isinstance(change, ColumnSchema):
                if change.name != name:
                    raise SchemaError(f"override for {name!r}: ColumnSchema named {change.name!r}")
                columns[name] = change
                continue
            unknown = sorted(set(change) - set(_FIELDS[1:]))
            if unknown:
                raise SchemaError(
                    f"override for column {name!r}: unknown field(s) {', '.join(unknown)}; "
                    f"expected {', '.join(_FIELDS[1:])}"
                )
            new = dataclasses.replace(old, **change)
            if "drift" not in change and old.drift == default_drift(old.type, old.role):
                new.drift = default_drift(new.type, new.role)
            columns[name] = new
        return Schema(columns)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        return {"version": SCHEMA_VERSION, "columns": [c.to_dict() for c in self]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Build from :meth:`to_dict` output; ``columns`` may also map names to field mappings."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"schema must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"version", "columns"})
        if unknown:
            raise SchemaError(f"schema: unknown key(s) {', '.join(map(str, unknown))}")
        if data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise SchemaError(f"schema: unsupported version {data['version']!r}")
        raw = data.get("columns")
        if isinstance(raw, Mapping):
            raw = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in raw.items()]
        if not isinstance(raw, list):
            raise SchemaError("schema: 'columns' must be a list or a mapping of columns")
        return cls.from_columns([_column_from_dict(spec, i) for i, spec in enumerate(raw)])

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Return the schema as JSON text; also write it to ``path`` if given."""
        return _write(json.dumps(self.to_dict(), indent=2) + "\n", path)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """Return the schema as YAML text; also write it to ``path`` if given."""
        return _write(yaml.safe_dump(self.to_dict(), sort_keys=False), path)

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> Schema:
        """Parse JSON text, or read a file (a PathLike or a one-line str ending in .json)."""
        return _parse(cls, source, "json")

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> Schema:
        """Parse YAML text, or read a file (a PathLike or a one-line str ending in .yaml/.yml)."""
        return _parse(cls, source, "yaml")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to ``path`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        (self.to_json if _format_of(path) == "json" else self.to_yaml)(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema file written by :meth:`save` (format chosen by extension)."""
        return _parse(cls, Path(path), _format_of(path))


def _write(text: str, path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _parse(cls: type[Schema], source: str | os.PathLike[str], fmt: str) -> Schema:
    """Read ``source`` (text, or a file if it is a path) as JSON or YAML and build a Schema."""
    if isinstance(source, str) and (
        "\n" in source or not source.strip().lower().endswith((".json", ".yaml", ".yml"))
    ):
        text, where = source, "schema text"
    else:
        where = os.fsdecode(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemaError(f"schema file not found: {where}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read schema file {where}: {exc}") from exc
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SchemaError(f"{where}: invalid {fmt.upper()}: {exc}") from exc
    try:
        return cls.from_dict(data)
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from None


def _column_from_dict(spec: object, index: int) -> ColumnSchema:
    if not isinstance(spec, Mapping):
        raise SchemaError(f"schema column #{index}: expected a mapping, got {spec!r}")
    where = f"schema column {spec.get('name', f'#{index}')!r}"
    unknown = sorted(set(map(str, spec)) - set(_FIELDS))
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [k for k in ("name", "type") if k not in spec]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {', '.join(missing)}")
    values = dict(spec)
    if "drift" not in values:
        ctype = _enum(ColumnType, values["type"], f"{where}: type")
        values["drift"] = default_drift(ctype, _enum(Role, values.get("role", "feature"), where))
    return ColumnSchema(**values)


def _format_of(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise SchemaError(f"schema file {os.fsdecode(path)}: unknown extension {suffix!r}; "
                      "expected .json, .yaml or .yml")  # fmt: skip


def _not_found(name: str, available: Sequence[str]) -> str:
    return f"column {name!r} not found; available columns: {', '.join(available) or '(none)'}"


# ---------------------------------------------------------------------- inference


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _id_like_name(name: str) -> bool:
    tokens = re.split(r"[^0-9a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return bool(tokens) and tokens[-1] in _ID_NAME_TOKENS


def _is_text_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _infer_type(name: str, col: pa.ChunkedArray, max_card: int, sample_size: int) -> ColumnType:
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
        if named_id or (unique and _dense_unique(col, non_null)):
            return ColumnType.ID
        if distinct <= max_card and len(values) < non_null:
            distinct = pc.count_distinct(col).as_py()  # cheap: few distinct values
        small = distinct <= max_card and (distinct <= 2 or non_null >= 3 * distinct)
        return ColumnType.CATEGORICAL if small else ColumnType.NUMERIC
    values = pc.cast(values, pa.large_string())
    if len(values) and pc.all(pc.match_substring_regex(values, ISO_DATETIME_RE)).as_py():
        return ColumnType.DATETIME
    if named_id:
        return ColumnType.ID
    if ratio >= 0.5 and distinct >= 20:
        length = pc.mean(pc.utf8_length(values)).as_py()
        spaces = pc.mean(pc.count_substring(values, " ")).as_py()
        if spaces >= 2 or (length >= 40 and spaces >= 1):
            return ColumnType.TEXT
    return ColumnType.ID if unique else ColumnType.CATEGORICAL


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
    categorical: str | Sequence[str] = (),
    numeric: str | Sequence[str] = (),
    text: str | Sequence[str] = (),
    datetime: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    max_categorical_integer_cardinality: int = 20,
    infer_ids: bool = True,
    infer_timestamp: bool = True,
    sample_size: int = _SAMPLE_SIZE,
) -> Schema:
    """Infer a :class:`Schema` from a reference table (see the module docstring for the rules).

    ``table`` may be anything :func:`watchkeeper.io.to_table` accepts. ``infer_ids=False`` keeps
    unnamed id-like columns as ordinary features; ``infer_timestamp=False`` leaves the timestamp
    role to the ``timestamp`` argument.
    """
    if not isinstance(table, pa.Table):
        table = to_table(table, name="reference")
    available = table.column_names
    roles: dict[str, Role] = {}
    forced: dict[str, ColumnType] = {}
    role_args: list[tuple[str, str | Sequence[str] | None, Role]] = [
        ("target", target, Role.TARGET), ("prediction", prediction, Role.PREDICTION),
        ("scores", scores, Role.SCORE), ("id_columns", id_columns, Role.ID),
        ("timestamp", timestamp, Role.TIMESTAMP), ("segments", segments, Role.SEGMENT),
    ]  # fmt: skip
    type_args: list[tuple[str, str | Sequence[str], ColumnType]] = [
        ("categorical", categorical, ColumnType.CATEGORICAL), ("text", text, ColumnType.TEXT),
        ("numeric", numeric, ColumnType.NUMERIC), ("datetime", datetime, ColumnType.DATETIME),
        ("id_columns", id_columns, ColumnType.ID),
    ]  # fmt: skip
    excluded = set(_as_list(exclude))
    for name in sorted(excluded - set(available)):
        raise SchemaError(f"exclude: {_not_found(name, available)}")
    for arg, names, kind in [*role_args, *type_args]:
        for name in _as_list(names):
            if name not in available:
                raise SchemaError(f"{arg}: {_not_found(name, available)}")
            seen: dict[str, Any] = roles if isinstance(kind, Role) else forced
            if seen.get(name, kind) != kind:
                what = "roles" if isinstance(kind, Role) else "types"
                raise SchemaError(f"column {name!r} is given two {what}: {seen[name]} and {kind}")
            seen[name] = kind
    columns: list[ColumnSchema] = []
    for name in available:
        col = table.column(name)
        role = roles.get(name, Role.FEATURE)
        ctype = forced.get(name) or _ROLE_TYPES.get(role)
        if ctype is None:
            ctype = _infer_type(name, col, max_categorical_integer_cardinality, sample_size)
            if ctype == ColumnType.ID and role == Role.FEATURE and infer_ids:
                role = Role.ID
            elif (ctype in (ColumnType.ID, ColumnType.TEXT) and role != Role.FEATURE) or (
                ctype == ColumnType.ID and not infer_ids
            ):
                ctype = ColumnType.CATEGORICAL
        nulls = col.null_count
        if pa.types.is_floating(col.type):
            nulls += pc.sum(pc.is_nan(col)).as_py() or 0
        drift = default_drift(ctype, role) and name not in excluded
        columns.append(ColumnSchema(name, ctype, role, nulls > 0, drift, str(col.type)))
    datetimes = [c for c in columns if c.type == ColumnType.DATETIME]
    if timestamp is None and infer_timestamp and [c.role for c in datetimes] == [Role.FEATURE]:
        datetimes[0].role = Role.TIMESTAMP
    return Schema.from_columns(columns)


_ROLE_TYPES = {
    Role.SCORE: ColumnType.NUMERIC, Role.ID: ColumnType.ID,
    Role.TIMESTAMP: ColumnType.DATETIME, Role.SEGMENT: ColumnType.CATEGORICAL,
}  # fmt: skip


def coerce_column(table: pa.Table, col: ColumnSchema) -> tuple[pa.Array, int]:
    """Cast ``table[col.name]`` for profiling; return ``(array, type_errors)``.

    numeric -> float64 (strings parsed, bools 0/1, NaN -> null); categorical/id/text -> string
    (bools as ``"true"``/``"false"``); datetime -> ``timestamp[us, tz=UTC]``. Non-null values that
    cannot be converted become null and are counted in ``type_errors``. See
    :func:`watchkeeper.io.coerce_array`.
    """
    if col.name not in table.column_names:
        raise SchemaError(_not_found(col.name, table.column_names))
    return coerce_array(table.column(col.name), col.type.value)
