"""Column schema: each column's type, role and drift flag.

:class:`Schema` holds one :class:`ColumnSchema` per column (type for profiling, role, drift
flag, nullability, and optional validation rules: ``min_value`` / ``max_value``, ``value_set``,
``regex``, ``max_length``), the policy for a rule violation (``on_violation``), with overrides
and JSON / YAML serialisation; :func:`coerce_column` casts
a column for profiling by its type. :func:`infer_schema` (defined in
:mod:`watchkeeper.schema_infer`, whose docstring gives the inference rules) infers a schema
from a reference table; :func:`explain_schema` also says why each column got its role.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import yaml

from watchkeeper.errors import SchemaError
from watchkeeper.io import coerce_array

__all__ = ["ColumnSchema", "ColumnType", "Role", "Schema"]
__all__ += ["coerce_column", "default_drift", "explain_schema", "infer_schema"]

SCHEMA_VERSION = 1
RULES = ("min_value", "max_value", "value_set", "regex", "max_length")
ON_VIOLATION = ("quarantine", "count")  # reject the row, or accept it and count the violation
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
    IGNORED = "ignored"  # in the reference, not monitored: not checked, profiled or drifted


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
    # validation rules, checked at ingest on features and segments (None: no rule)
    min_value: float | None = None  # numeric
    max_value: float | None = None  # numeric
    value_set: list[Any] | None = None  # the allowed values
    regex: str | None = None  # categorical: each value must contain a match (unanchored)
    max_length: int | None = None  # categorical: characters

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
        _check_rules(self)

    def rules(self) -> dict[str, Any]:
        """The validation rules that are set, by name."""
        return {k: getattr(self, k) for k in RULES if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        out = {**dataclasses.asdict(self), "type": self.type.value, "role": self.role.value}
        return {k: v for k, v in out.items() if k not in RULES or v is not None}


def _check_rules(col: ColumnSchema) -> None:
    where = f"column {col.name!r}"
    rules = col.rules()
    if rules and col.type not in (ColumnType.NUMERIC, ColumnType.CATEGORICAL):
        raise SchemaError(f"{where}: rules ({', '.join(rules)}) apply to numeric and "
                          f"categorical columns only, not {col.type.value}")  # fmt: skip
    numeric = col.type == ColumnType.NUMERIC
    for key in ("min_value", "max_value"):
        value = rules.get(key)
        if value is None:
            continue
        if not numeric:
            raise SchemaError(f"{where}: {key} applies to numeric columns only")
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise SchemaError(f"{where}: {key} must be a number, got {value!r}")
    low, high = col.min_value, col.max_value
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{where}: min_value {low} is above max_value {high}")
    for key in ("regex", "max_length"):
        if key in rules and numeric:
            raise SchemaError(f"{where}: {key} applies to categorical columns only")
    if col.value_set is not None:
        if not isinstance(col.value_set, list | tuple) or not col.value_set:
            raise SchemaError(f"{where}: value_set must be a non-empty list")
        kinds = (int, float) if numeric else (str, int, bool)
        bad = [v for v in col.value_set if not isinstance(v, kinds)]
        if bad:
            raise SchemaError(f"{where}: value_set holds {bad[0]!r}, not a {col.type.value} value")
        col.value_set = list(col.value_set)
    if col.max_length is not None and (
        isinstance(col.max_length, bool)
        or not isinstance(col.max_length, int)
        or col.max_length < 0
    ):
        raise SchemaError(f"{where}: max_length must be a non-negative integer")
    if col.regex is not None:
        if not isinstance(col.regex, str):
            raise SchemaError(f"{where}: regex must be a string")
        import pyarrow.compute as pc

        try:  # the engine ingest uses (RE2)
            pc.match_substring_regex(pa.array([""]), col.regex)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"{where}: invalid regex {col.regex!r}: {exc}") from None


_FIELDS = tuple(f.name for f in dataclasses.fields(ColumnSchema))


@dataclass
class Schema:
    """The columns of a monitored dataset, in column order, and what a rule violation does."""

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    on_violation: str = "quarantine"  # see ON_VIOLATION

    def __post_init__(self) -> None:
        if self.on_violation not in ON_VIOLATION:
            raise SchemaError(
                f"on_violation: invalid value {self.on_violation!r}; "
                f"expected one of {', '.join(ON_VIOLATION)}"
            )
        for key, col in self.columns.items():
            if not isinstance(col, ColumnSchema) or col.name != key:
                raise SchemaError(f"schema entry {key!r} must be a ColumnSchema named {key!r}")
        for role in (Role.TARGET, Role.TIMESTAMP):
            named = [c.name for c in self.by_role(role)]
            if len(named) > 1:
                raise SchemaError(f"at most one {role} column is allowed, got {', '.join(named)}")

    @classmethod
    def from_columns(
        cls, columns: Sequence[ColumnSchema], on_violation: str = "quarantine"
    ) -> Schema:
        names = [c.name for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError(f"duplicate columns in schema: {', '.join(duplicates)}")
        return cls({c.name: c for c in columns}, on_violation)

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
        return Schema(columns, self.on_violation)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SCHEMA_VERSION, "columns": [c.to_dict() for c in self]}
        if self.on_violation != "quarantine":  # the default is left out: older readers load it
            out["on_violation"] = self.on_violation
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Build from :meth:`to_dict` output; ``columns`` may also map names to field mappings."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"schema must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"version", "columns", "on_violation"})
        if unknown:
            raise SchemaError(f"schema: unknown key(s) {', '.join(map(str, unknown))}")
        if data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise SchemaError(f"schema: unsupported version {data['version']!r}")
        raw = data.get("columns")
        if isinstance(raw, Mapping):
            raw = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in raw.items()]
        if not isinstance(raw, list):
            raise SchemaError("schema: 'columns' must be a list or a mapping of columns")
        columns = [_column_from_dict(spec, i) for i, spec in enumerate(raw)]
        return cls.from_columns(columns, data.get("on_violation", "quarantine"))

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


# Re-exported here, its public home. Imported last because watchkeeper.schema_infer imports the
# types above from this module: the cycle resolves since they are all defined by now.
from watchkeeper.schema_infer import explain_schema, infer_schema  # noqa: E402
