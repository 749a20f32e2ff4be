"""A version's training baseline: its reference's labelled rows folded, at registration, into
the performance aggregate a window's labels are folded into, so the baseline's metrics and
intervals are computed exactly as a window's (:mod:`watchkeeper.evaluation.performance`).

A row counts when its target is not null; its prediction and score are read as an event's are
(:func:`watchkeeper.ingest.index.predictions` and :func:`~watchkeeper.ingest.index.scores`),
and its label as text, as a delivered label is.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from watchkeeper.ingest.index import predictions, scores
from watchkeeper.ingest.registry import target_classes, task_of
from watchkeeper.ingest.validate import as_text
from watchkeeper.profiles import DatasetProfile
from watchkeeper.schema import Role, Schema
from watchkeeper.stats.labelled import fold_labelled

__all__ = ["reference_performance"]


def reference_performance(
    table: pa.Table, schema: Schema, profile: DatasetProfile
) -> dict[str, Any] | None:
    """The folded performance of the reference's labelled rows; None without a target or a
    prediction column in the reference, or without a labelled row."""
    target = schema.target
    has_prediction = any(c.name in table.column_names for c in schema.by_role(Role.PREDICTION))
    if target is None or target not in table.column_names or not has_prediction:
        return None
    labels = as_text(table.column(target).combine_chunks()).to_pylist()
    rows = zip(predictions(table, schema), labels, scores(table, schema, profile), strict=True)
    items = [(p, label, s) for p, label, s in rows if label is not None]
    if not items:
        return None
    return fold_labelled(task_of(schema), None, items, target_classes(schema, profile))
