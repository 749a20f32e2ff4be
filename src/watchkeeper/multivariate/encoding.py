"""The feature matrix of the multivariate checks: one float column per input feature.

Numeric features are standardized with the mean and standard deviation of the rows the encoder
was fitted on; categorical features are frequency-encoded (a category becomes its share of
those rows, an unseen category 0, a missing value the share of missing values), then
standardized the same way (NannyML's data reconstruction does the same). Missing numeric values
stay NaN, or become the fitted mean (0 once standardized) with ``impute=True``: the PCA needs a
number, the domain classifier's trees handle NaN themselves. Constant features are left out:
they carry no information about a change in the joint distribution.

Examples
--------
>>> import pyarrow as pa
>>> enc = Encoder.fit(pa.table({"x": [1.0, 2.0, 3.0, None], "c": ["a", "a", "b", "a"]}), ["x", "c"])
>>> enc.columns
['x', 'c']
>>> enc.transform(pa.table({"x": [2.0, None], "c": ["b", "z"]}), impute=True).round(3).tolist()
[[0.0, -1.732], [0.0, -2.887]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

Matrix = NDArray[np.float64]


def _numeric(column: pa.ChunkedArray) -> NDArray[np.float64]:
    values = pc.cast(column, pa.float64())
    out: NDArray[np.float64] = np.array(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def _strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


@dataclass
class _Categories:
    values: pa.Array  # the categories seen, as strings
    shares: NDArray[np.float64]  # their shares, then the share of missing values

    def encode(self, column: pa.ChunkedArray) -> NDArray[np.float64]:
        strings = _strings(column)
        k = len(self.values)
        # one lookup: the seen categories' shares, 0 for an unseen one, the missing share
        lookup = np.concatenate([self.shares[:k], [0.0, self.shares[-1]]])
        index = pc.fill_null(pc.index_in(strings, value_set=self.values), k)
        if strings.null_count:
            index = pc.if_else(strings.is_null(), k + 1, index)
        idx = np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.intp)
        out: NDArray[np.float64] = lookup[idx]
        return out


@dataclass
class Encoder:
    """Fitted on a table's rows: ``transform`` turns any table with those columns into the
    standardized matrix (rows × ``columns``)."""

    columns: list[str]
    categories: dict[str, _Categories]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(
        cls, table: pa.Table, columns: Sequence[str], categorical: Sequence[str] = ()
    ) -> Encoder:
        """``columns`` in order; those in ``categorical`` (or of a string or dictionary type)
        are frequency-encoded, the others read as numbers."""
        n = max(table.num_rows, 1)
        cats: dict[str, _Categories] = {}
        raw: list[NDArray[np.float64]] = []
        for name in columns:
            column = table.column(name)
            if name in categorical or _is_text(column.type):
                counts = pc.value_counts(_strings(column).drop_null())
                values = counts.field("values")
                shares = np.asarray(counts.field("counts").to_numpy(), dtype=np.float64) / n
                missing = column.null_count / n
                cats[name] = _Categories(values, np.append(shares, missing))
                raw.append(cats[name].encode(column))
            else:
                raw.append(_numeric(column))
        matrix = np.column_stack(raw) if raw else np.empty((table.num_rows, 0))
        present = ~np.isnan(matrix)
        count = present.sum(axis=0)
        filled = np.where(present, matrix, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):  # an all-missing column: NaN
            mean = filled.sum(axis=0) / count
            scale = np.sqrt(np.where(present, (filled - mean) ** 2, 0.0).sum(axis=0) / count)
        keep = np.isfinite(scale) & (scale > 0)
        kept = [name for name, k in zip(columns, keep, strict=True) if k]
        return cls(
            kept,
            {name: c for name, c in cats.items() if name in kept},
            mean[keep],
            scale[keep],
        )

    def transform(self, table: pa.Table, *, impute: bool) -> Matrix:
        """The standardized matrix of ``table``'s rows; NaN for missing numbers unless
        ``impute`` (then 0: the fitted mean)."""
        matrix: Matrix = np.empty((table.num_rows, len(self.columns)))
        for j, name in enumerate(self.columns):
            column = table.column(name)
            cat = self.categories.get(name)
            matrix[:, j] = cat.encode(column) if cat is not None else _numeric(column)
        matrix -= self.mean
        matrix /= self.scale
        if impute:
            matrix[np.isnan(matrix)] = 0.0
        return matrix


def _is_text(kind: pa.DataType) -> bool:
    """Read as categories: anything but numbers and booleans."""
    return not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
    )
