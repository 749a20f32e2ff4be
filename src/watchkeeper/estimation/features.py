"""The model inputs of the error models: a table's feature columns as one float matrix.

Numeric features are read as floats (missing: NaN). Categorical features become integer codes
of the reference's ``MAX_CATEGORIES`` most frequent values; a value outside them, or missing,
is NaN, which the gradient boosting treats as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import ColumnType, Role, Schema

__all__ = ["MAX_CATEGORIES", "FeatureEncoder"]

MAX_CATEGORIES = 250  # the histogram gradient boosting's limit is 255 bins


@dataclass
class FeatureEncoder:
    """Feature names, and per categorical feature its categories in code order."""

    numeric: list[str]
    categories: dict[str, list[str]]

    @classmethod
    def fit(cls, table: pa.Table, schema: Schema, exclude: Sequence[str] = ()) -> FeatureEncoder:
        numeric, categories = [], {}
        for col in schema.by_role(Role.FEATURE):
            if col.name in exclude or col.name not in table.column_names:
                continue
            if col.type == ColumnType.NUMERIC:
                numeric.append(col.name)
            elif col.type == ColumnType.CATEGORICAL:
                counts = pc.value_counts(table.column(col.name).cast(pa.string()))
                pairs = [
                    (str(v["values"]), int(v["counts"]))
                    for v in counts.to_pylist()
                    if v["values"] is not None
                ]
                pairs.sort(key=lambda p: -p[1])
                categories[col.name] = [v for v, _ in pairs[:MAX_CATEGORIES]]
        return cls(numeric, categories)

    @property
    def categorical(self) -> list[bool]:
        return [False] * len(self.numeric) + [True] * len(self.categories)

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categories]

    def missing(self, table: pa.Table) -> list[str]:
        return [n for n in self.names if n not in table.column_names]

    def transform(self, table: pa.Table) -> npt.NDArray[np.float64]:
        """The (rows, features) matrix of ``table`` (which has every feature column)."""
        cols = []
        for name in self.numeric:
            arr = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
            cols.append(np.asarray(arr, dtype=np.float64))
        for name, cats in self.categories.items():
            values = table.column(name).cast(pa.string())
            codes = pc.index_in(values, value_set=pa.array(cats, type=pa.string()))
            cols.append(np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.float64))
        if not cols:
            return np.zeros((table.num_rows, 0))
        return np.column_stack(cols)
