"""whylogs: profile both frames, then its drift scores (whylogs 1.6.x, ``[viz]`` extra).

Drift mode times ``why.log(pandas=reference)``, ``why.log(pandas=current)`` and
``whylogs.viz.drift.column_drift_algorithms.calculate_drift_scores(target_view=current,
reference_view=reference, with_thresholds=True)`` with the default drift map: a KS
test on the profiles' KLL sketches for numeric columns, a chi-square test on the
frequent-items sketches for categorical ones. whylogs labels each column NO_DRIFT
(p > 0.15), POSSIBLE_DRIFT (0.05-0.15) or DRIFT (p < 0.05); a column counts as
flagged when it is DRIFT.

Profile mode times ``why.log(pandas=current)`` alone.

Input: pandas DataFrames (``--input``: object strings or ``category`` columns) read from
parquet before the timer.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    import whylogs

    return str(whylogs.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs)


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import (
        calculate_drift_scores,
    )

    ref, cur = frames
    ref_view = why.log(pandas=ref).view()
    cur_view = why.log(pandas=cur).view()
    scores = calculate_drift_scores(
        target_view=cur_view, reference_view=ref_view, with_thresholds=True
    )
    flagged: list[str] = []
    details: dict[str, Any] = {}
    for col, score in scores.items():
        if score is None:
            details[col] = {"drift_category": None}
            continue
        details[col] = {
            "method": score.get("algorithm"),
            "statistic": float(score["statistic"]),
            "p_value": float(score["pvalue"]),
            "drift_category": score.get("drift_category"),
        }
        if score.get("drift_category") == "DRIFT":
            flagged.append(col)
    return h.Outcome(flagged, details)


def _profile(frames: tuple[Any, Any]) -> int:
    import whylogs as why

    current = frames[1]
    why.log(pandas=current).view()
    return len(current)


if __name__ == "__main__":
    h.main("whylogs", _version, _load, _detect, profile=_profile)
