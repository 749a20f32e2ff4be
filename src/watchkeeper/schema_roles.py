"""Look-alike columns: reference columns that hold a model's output or a time, not an input.

A model's training reference often carries its own outputs beside the inputs: a probability
(``churn_score``, ``proba_1``, ``p_yes``) or an event time stored as epoch seconds. Made
features, they are drift-checked as inputs and, with no nulls in the reference, required in
every event, so events without them are quarantined. :func:`settle_lookalikes` keeps them out of
the features when :func:`~watchkeeper.schema.infer_schema` is called with
``exclude_lookalikes=True`` (registration does so). Only columns no argument names are touched.

* **Score look-alike**: type ``numeric``, every value in [0, 1], and named like a score: a name
  token (``snake_case``, ``camelCase``, ``kebab-case``) ``score``, ``scores``, ``proba``,
  ``probas``, ``probability``, ``probabilities``, ``prob``, ``confidence`` or ``likelihood``,
  or a first token ``p`` followed by a class (``p_yes``, ``p_1``). A score-named column with
  values outside [0, 1] (``credit_score`` of 300 to 850) is an input and stays a feature.
* It gets role ``score`` when that is unambiguous: no ``scores`` given, one prediction column
  given, whose reference values are binary (at most 2 distinct, the target's too when one is
  given), and this the only score look-alike: the positive class's probability, as a binary
  model's ``scores`` column is. Otherwise (several look-alikes, no prediction, more than two
  classes, or ``scores`` given) it gets role ``ignored``: never guessed as a score that would
  feed ROC AUC, never a feature. Either way its reason says so; give it with ``features`` or
  ``scores`` to decide otherwise.
* **Epoch-time look-alike**: type ``numeric``, named like a time (a last token ``time``,
  ``timestamp``, ``ts``, ``date``, ``datetime``, ``at`` or ``epoch``), every value between
  2001-09-09 and 2096-10-02 as epoch seconds (10^9 to 4 x 10^9) or milliseconds: role
  ``ignored`` (its values drift by construction).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import ColumnSchema, ColumnType, Role

__all__ = ["settle_lookalikes"]

_SCORE_TOKENS = frozenset(
    {"score", "scores", "proba", "probas", "probability", "probabilities", "prob"}
    | {"confidence", "likelihood"}
)
_TIME_TOKENS = frozenset({"time", "timestamp", "ts", "date", "datetime", "at", "epoch"})
_EPOCH_SECONDS = (1e9, 4e9)


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return [t for t in re.split(r"[^0-9a-z]+", spaced) if t]


def score_like_name(name: str) -> bool:
    """Named like a model's score or probability (see the module docstring)."""
    tokens = _tokens(name)
    return bool(_SCORE_TOKENS & set(tokens)) or (len(tokens) > 1 and tokens[0] == "p")


def time_like_name(name: str) -> bool:
    tokens = _tokens(name)
    return bool(tokens) and tokens[-1] in _TIME_TOKENS


def _range(col: pa.ChunkedArray) -> tuple[float, float] | None:
    """The (min, max) of a numeric column's finite values; None when it has none."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return None
    values = pc.cast(col, pa.float64())
    values = pc.filter(values, pc.is_finite(values))
    if len(values) == 0:
        return None
    low, high = (v.as_py() for v in pc.min_max(values).values())
    return float(low), float(high)


def _distinct(col: pa.ChunkedArray) -> int:
    return int(pc.count_distinct(col.drop_null()).as_py())


def settle_lookalikes(
    table: pa.Table,
    columns: Sequence[ColumnSchema],
    given: Mapping[str, object],
    *,
    scores_given: bool,
    prediction: Sequence[str],
    target: str | None,
) -> dict[str, str]:
    """Give the unnamed look-alike features of ``columns`` (changed in place) role ``score`` or
    ``ignored``; return the reason for each column changed, or kept despite its name."""
    reasons: dict[str, str] = {}
    candidates: list[ColumnSchema] = []
    for col in columns:
        if col.name in given or col.role != Role.FEATURE or col.type != ColumnType.NUMERIC:
            continue
        span = _range(table.column(col.name))
        if score_like_name(col.name):
            if span is not None and span[0] >= 0.0 and span[1] <= 1.0:
                candidates.append(col)
            else:
                reasons[col.name] = "named like a score, but its values are not all in [0, 1]"
        elif time_like_name(col.name) and span is not None and _epoch(span):
            col.role, col.drift = Role.IGNORED, False
            reasons[col.name] = "named like a time, values look like epoch times"
    if not candidates:
        return reasons
    why = _not_a_score(table, len(candidates), scores_given, prediction, target)
    for col in candidates:
        col.role, col.drift = (Role.IGNORED if why else Role.SCORE), False
        reasons[col.name] = "named like a score, values in [0, 1], " + (
            why or f"beside the binary prediction {prediction[0]!r}"
        )
    return reasons


def _epoch(span: tuple[float, float]) -> bool:
    low, high = _EPOCH_SECONDS
    return (low <= span[0] and span[1] <= high) or (low * 1e3 <= span[0] and span[1] <= high * 1e3)


def _not_a_score(
    table: pa.Table, found: int, scores_given: bool, prediction: Sequence[str], target: str | None
) -> str:
    """Why look-alikes cannot be taken as the binary score, or "" when they can."""
    if scores_given:
        return "not one of the given scores"
    if found > 1:
        return f"one of {found} such columns"
    if len(prediction) != 1:
        return "no prediction column given" if not prediction else "several predictions given"
    outputs = [prediction[0], *([target] if target else [])]
    if any(_distinct(table.column(name)) > 2 for name in outputs):
        return "the prediction or target has more than two classes"
    return ""
