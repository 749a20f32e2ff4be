"""Class labels: null detection, canonical label strings, class lists and label encoding.

Labels may be strings, ints, floats, bools or objects and are compared as strings:
:func:`label_strings` writes integral floats as integers (``1.0 -> "1"``) so that a float
column of class ids matches an int one. Class lists are sorted by :func:`sort_classes`,
numerically when every class parses as a number, else lexicographically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError

__all__ = [
    "Labels",
    "as_1d",
    "encode_labels",
    "factorize",
    "label_strings",
    "null_mask",
    "resolve_classes",
    "sort_classes",
]

Labels = npt.ArrayLike | Sequence[Any]  # lists may hold None


def as_1d(x: Any, name: str) -> npt.NDArray[Any]:
    """``x`` as a 1-D numpy array; :class:`InputError` naming ``name`` otherwise."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    return arr


def null_mask(arr: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """True where a label is None or NaN."""
    if arr.dtype.kind == "f":
        return np.asarray(np.isnan(arr), dtype=np.bool_)
    if arr.dtype.kind == "O":
        none = np.equal(arr, np.asarray(None, dtype=object))
        return np.asarray(none | np.not_equal(arr, arr), dtype=np.bool_)
    return np.zeros(arr.shape, dtype=bool)


def label_strings(arr: npt.NDArray[Any]) -> npt.NDArray[np.str_]:
    """Labels (no nulls) as strings; integral floats are written as integers (1.0 -> "1")."""
    if arr.dtype.kind == "O" and arr.size:
        try:
            inferred = np.array(arr.tolist())
        except ValueError:
            inferred = arr
        if inferred.ndim == 1 and inferred.dtype.kind != "O":
            arr = inferred
    out = arr.astype(str)
    if arr.dtype.kind == "f":
        integral = np.isfinite(arr) & (np.abs(arr) < 2.0**53)
        integral[integral] = arr[integral] == np.floor(arr[integral])
        out = out.astype(object)
        out[integral] = arr[integral].astype(np.int64).astype(str)
        out = out.astype(str)
    return out


def factorize(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """Unique label strings and each row's index into them (strings made once per value)."""
    if arr.dtype.kind == "O":
        arr = label_strings(arr)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return label_strings(uniq), np.asarray(inverse, dtype=np.intp).reshape(-1)


def sort_classes(labels: npt.ArrayLike) -> list[str]:
    """Unique class names, numerically sorted when all parse as numbers, else lexicographic."""
    uniq = [str(c) for c in np.unique(np.asarray(labels, dtype=str))]
    try:
        keys = [float(c) for c in uniq]
    except ValueError:
        return uniq
    if any(math.isnan(k) for k in keys):
        return uniq
    return [c for _, c in sorted(zip(keys, uniq, strict=True))]


def resolve_classes(
    seen: Sequence[npt.NDArray[np.str_]], classes: npt.NDArray[Any] | None, pos: str | None
) -> list[str]:
    """The sorted class list: ``classes`` if given (validated), else the ``seen`` labels + pos."""
    if classes is None:
        return sort_classes(np.concatenate([*seen, np.asarray([] if pos is None else [pos])]))
    if null_mask(classes).any():
        raise InputError("classes must not contain None / NaN")
    c_str = label_strings(classes)
    if len(np.unique(c_str)) != len(c_str):
        raise InputError(f"classes has duplicates: {[str(c) for c in c_str]}")
    class_list = sort_classes(c_str)
    if pos is not None and pos not in class_list:
        raise InputError(f"pos_label {pos!r} is not one of classes {class_list}")
    return class_list


def encode_labels(
    labels: npt.NDArray[np.str_], classes: list[str], name: str
) -> npt.NDArray[np.intp]:
    """Class index of each label; InputError naming the labels not in ``classes``."""
    if not classes:
        if labels.size:
            raise InputError(f"{name} has labels not in classes: {sorted(set(labels[:5]))}")
        return np.zeros(0, dtype=np.intp)
    cls = np.asarray(classes, dtype=str)
    order = np.argsort(cls, kind="stable")
    pos = np.minimum(np.searchsorted(cls[order], labels), len(cls) - 1)
    found = cls[order][pos] == labels
    if not found.all():
        unseen = [str(u) for u in np.unique(labels[~found])[:5]]
        raise InputError(f"{name} has labels not in classes: {unseen}")
    return np.asarray(order[pos], dtype=np.intp)
