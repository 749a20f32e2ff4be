"""The profile of a categorical column: counts over the reference's categories, the rest exactly
up to a cap and in a frequent-items sketch beyond it, and a distinct-count sketch.

Layout. ``categories`` are frozen from the reference (its most frequent values, at most
``max_categories``); ``counts`` has one cell per category plus a last cell for every other value
(values unseen in the reference, or the reference's own tail past the cap). Values of that
last cell are kept by value in ``extra`` while there are at most ``max_extra`` distinct ones;
past that they move to an Apache DataSketches frequent-items sketch (``extra`` becomes
``None``), whose per-item error bound is ``sketch.get_epsilon() * weight``. The distinct count
is an HLL sketch (relative standard error about 1.04 / sqrt(2 ** lg_k), 1.6 % at lg_k = 12).

Every part except the two sketches is exact and merges exactly: counts add, ``extra`` dicts
add while the union stays under the cap.

Examples
--------
>>> import pyarrow as pa
>>> ref = pa.array(["a", "b", "a", None, "c"])
>>> cats = top_categories(ref, max_categories=10)
>>> cats
('a', 'b', 'c')
>>> p = CategoricalProfile.build(pa.array(["a", "d", "d"]), cats)
>>> p.counts.tolist(), p.extra
([1, 0, 0, 2], {'d': 2})
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.errors import ProfileMismatchError

IntArray = NDArray[np.int64]

DEFAULT_MAX_CATEGORIES = 200
DEFAULT_MAX_EXTRA = 1000
HLL_LG_K = 12
FREQUENT_LG_MAX = 10


def value_counts(values: pa.Array | pa.ChunkedArray) -> tuple[list[str], IntArray, int]:
    """Distinct non-null values (as str), their counts, and the number of nulls."""
    nulls = int(values.null_count)
    if len(values) - nulls == 0:
        return [], np.empty(0, dtype=np.int64), nulls
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if string_dictionary(values.type) and not any(c.dictionary.null_count for c in chunks):
        return (*_dictionary_counts(chunks), nulls)
    counted = pc.value_counts(pc.drop_null(values))
    keys = [str(v) for v in counted.field("values").to_pylist()]
    return keys, counted.field("counts").to_numpy().astype(np.int64), nulls


def string_dictionary(t: pa.DataType) -> bool:
    """Whether ``t`` is a dictionary of (large) strings: counted by its codes."""
    return bool(
        pa.types.is_dictionary(t)
        and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
    )


def _dictionary_counts(chunks: list[pa.DictionaryArray]) -> tuple[list[str], IntArray]:
    """Counts of a dictionary-encoded string array from its codes (np.bincount), without
    hashing or decoding a value; keys in dictionary order, each value once."""
    totals: dict[str, int] = {}
    for chunk in chunks:
        if len(chunk) == chunk.null_count:
            continue
        codes = chunk.indices if not chunk.null_count else pc.drop_null(chunk.indices)
        counts = np.bincount(codes.to_numpy(), minlength=len(chunk.dictionary))
        for key, n in zip(chunk.dictionary.to_pylist(), counts.tolist(), strict=True):
            if n:
                totals[str(key)] = totals.get(str(key), 0) + n
    return list(totals), np.fromiter(totals.values(), dtype=np.int64, count=len(totals))


def top_categories(values: pa.Array | pa.ChunkedArray, max_categories: int) -> tuple[str, ...]:
    """The reference's categories, most frequent first and ties by value, capped."""
    return top_of_counts(*value_counts(values)[:2], max_categories)


def top_of_counts(keys: list[str], counts: IntArray, max_categories: int) -> tuple[str, ...]:
    """The most frequent keys first, ties by value, at most ``max_categories``."""
    order = sorted(range(len(keys)), key=lambda i: (-counts[i], keys[i]))
    return tuple(keys[i] for i in order[:max_categories])


def _new_hll() -> Any:
    return ds.hll_sketch(HLL_LG_K)


@dataclass(eq=False)
class CategoricalProfile:
    """Mergeable profile of one categorical column (see the module docstring)."""

    categories: tuple[str, ...]
    counts: IntArray
    count: int = 0
    nulls: int = 0
    type_errors: int = 0
    extra: dict[str, int] | None = field(default_factory=dict)
    extra_sketch: Any = None
    hll: Any = field(default_factory=_new_hll)
    max_extra: int = DEFAULT_MAX_EXTRA

    @classmethod
    def build(
        cls,
        values: pa.Array | pa.ChunkedArray,
        categories: tuple[str, ...],
        *,
        type_errors: int = 0,
        max_extra: int = DEFAULT_MAX_EXTRA,
    ) -> CategoricalProfile:
        """Profile a string array against the frozen ``categories``."""
        keys, counted, nulls = value_counts(values)
        return cls.from_counts(
            keys, counted, categories, nulls=nulls, type_errors=type_errors, max_extra=max_extra
        )

    @classmethod
    def from_counts(
        cls,
        keys: list[str],
        counted: IntArray,
        categories: tuple[str, ...],
        *,
        nulls: int = 0,
        type_errors: int = 0,
        max_extra: int = DEFAULT_MAX_EXTRA,
    ) -> CategoricalProfile:
        """Profile from distinct values and their counts (as :func:`value_counts` returns)."""
        index = {c: i for i, c in enumerate(categories)}
        slots = np.array([index.get(k, len(categories)) for k in keys], dtype=np.int64)
        counts = np.bincount(slots, weights=counted, minlength=len(categories) + 1).astype(np.int64)
        hll = _new_hll()
        for key in keys:
            hll.update(key)
        profile = cls(
            categories=tuple(categories),
            counts=counts,
            count=int(counted.sum()),
            nulls=nulls,
            type_errors=int(type_errors),
            hll=hll,
            max_extra=max_extra,
        )
        extra_positions = np.flatnonzero(slots == len(categories))
        profile._add_extra({keys[i]: int(counted[i]) for i in extra_positions})
        return profile

    @property
    def rows(self) -> int:
        return self.count + self.nulls + self.type_errors

    @property
    def unseen(self) -> int:
        """Values outside the frozen categories."""
        return int(self.counts[-1])

    @property
    def distinct_estimate(self) -> float:
        return float(self.hll.get_estimate())

    def top_extra(self, n: int = 10) -> list[tuple[str, int]]:
        """The most frequent values outside the categories (estimates once in the sketch)."""
        if self.extra is not None:
            return sorted(self.extra.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        error_type = ds.frequent_items_error_type.NO_FALSE_NEGATIVES
        items = [(str(i[0]), int(i[1])) for i in self.extra_sketch.get_frequent_items(error_type)]
        return sorted(items, key=lambda kv: (-kv[1], kv[0]))[:n]

    def _add_extra(self, more: dict[str, int]) -> None:
        if not more:
            return
        if self.extra is not None:
            merged = dict(self.extra)
            for key, value in more.items():
                merged[key] = merged.get(key, 0) + value
            if len(merged) <= self.max_extra:
                self.extra = merged
                return
            self.extra_sketch = ds.frequent_strings_sketch(FREQUENT_LG_MAX)
            more, self.extra = merged, None
        for key, value in more.items():
            self.extra_sketch.update(key, value)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """A new profile of both inputs; the categories must be the same."""
        if self.categories != other.categories:
            raise ProfileMismatchError(
                "cannot merge categorical profiles with different categories"
            )
        hll = ds.hll_union(HLL_LG_K)
        hll.update(self.hll)
        hll.update(other.hll)
        merged = CategoricalProfile(
            categories=self.categories,
            counts=self.counts + other.counts,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            type_errors=self.type_errors + other.type_errors,
            extra=None if self.extra is None else dict(self.extra),
            hll=hll.get_result(),
            max_extra=self.max_extra,
        )
        if self.extra_sketch is not None:
            merged.extra_sketch = ds.frequent_strings_sketch.deserialize(
                self.extra_sketch.serialize()
            )
        if other.extra is not None:
            merged._add_extra(other.extra)
        else:
            if merged.extra is not None:  # move our exact values into a sketch first
                sketch = ds.frequent_strings_sketch(FREQUENT_LG_MAX)
                for key, value in merged.extra.items():
                    sketch.update(key, value)
                merged.extra_sketch, merged.extra = sketch, None
            merged.extra_sketch.merge(other.extra_sketch)
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "count": self.count,
            "nulls": self.nulls,
            "type_errors": self.type_errors,
            "extra": self.extra,
            "extra_sketch": None
            if self.extra_sketch is None
            else base64.b64encode(self.extra_sketch.serialize()).decode("ascii"),
            "hll": base64.b64encode(self.hll.serialize_compact()).decode("ascii"),
            "max_extra": self.max_extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalProfile:
        sketch = data.get("extra_sketch")
        return cls(
            categories=tuple(data["categories"]),
            counts=np.asarray(data["counts"], dtype=np.int64),
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            type_errors=int(data["type_errors"]),
            extra=None
            if data["extra"] is None
            else {str(k): int(v) for k, v in data["extra"].items()},
            extra_sketch=None
            if sketch is None
            else ds.frequent_strings_sketch.deserialize(base64.b64decode(sketch)),
            hll=ds.hll_sketch.deserialize(base64.b64decode(data["hll"])),
            max_extra=int(data["max_extra"]),
        )
