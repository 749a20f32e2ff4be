"""Data quality from profiles: missing values, type errors, out-of-range values, unseen
categories, and findings a person should read. Nothing here raises on odd data: an all-null
column, a constant column or an empty window is a finding."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.numeric import NumericProfile

ColumnProfile = NumericProfile | CategoricalProfile

# a change in missing share is reported when it is this large and beyond sampling noise
MISSING_CHANGE_MIN = 0.01
MISSING_CHANGE_Z = 4.0


@dataclass(frozen=True)
class Finding:
    """Something a person should know about the data; never an exception."""

    column: str | None
    severity: str  # "info", "warning" or "critical"
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def column_quality(profile: ColumnProfile) -> dict[str, Any]:
    """Quality figures of one profile."""
    rows = profile.rows
    out: dict[str, Any] = {
        "rows": rows,
        "missing": profile.nulls,
        "missing_share": _share(profile.nulls, rows),
        "type_errors": profile.type_errors,
    }
    if isinstance(profile, NumericProfile):
        out_of_range = int(profile.counts[0] + profile.counts[-1]) if profile.edges.size else 0
        out.update(
            out_of_range=out_of_range,
            out_of_range_share=_share(out_of_range, profile.count),
            non_finite=profile.non_finite,
            min=_finite(profile.minimum),
            max=_finite(profile.maximum),
            mean=_finite(profile.mean),
            std=_finite(profile.std),
            median=_finite(profile.quantile(0.5)),
        )
    else:
        out.update(
            unseen=profile.unseen,
            unseen_share=_share(profile.unseen, profile.count),
            distinct=round(profile.distinct_estimate),
            top_unseen=[v for v, _ in profile.top_extra(5)],
        )
    return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _missing_changed(ref: dict[str, Any], cur: dict[str, Any]) -> bool:
    p0, p1, n0, n1 = ref["missing_share"], cur["missing_share"], ref["rows"], cur["rows"]
    if not n0 or not n1 or abs(p1 - p0) < MISSING_CHANGE_MIN:
        return False
    pooled = (ref["missing"] + cur["missing"]) / (n0 + n1)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n0 + 1 / n1))
    return bool(abs(p1 - p0) / se >= MISSING_CHANGE_Z)


def compare_quality(
    name: str, ref: ColumnProfile, cur: ColumnProfile, *, late: bool = False
) -> tuple[dict[str, Any], list[Finding]]:
    """Reference and current quality of a column, their change, and the findings.

    ``late``: the column's values may arrive after the rest (the target: labels come late),
    so more missing values in the current data are an info finding, not a warning."""
    q_ref, q_cur = column_quality(ref), column_quality(cur)
    entry = {
        "type": "numeric" if isinstance(ref, NumericProfile) else "categorical",
        "reference": q_ref,
        "current": q_cur,
        "missing_share_change": q_cur["missing_share"] - q_ref["missing_share"],
    }
    findings: list[Finding] = []

    def add(severity: str, kind: str, message: str) -> None:
        findings.append(Finding(name, severity, kind, message))

    lagging = late and q_cur["missing_share"] > q_ref["missing_share"]
    later = " (labels may not have arrived yet)" if lagging else ""
    for side, q, prof in (("reference", q_ref, ref), ("current", q_cur, cur)):
        if q["rows"] and prof.count == 0:
            expected = lagging and side == "current"
            add(
                "info" if expected else "warning",
                "all_missing",
                f"{name} has no valid values in the {side} data{later if expected else ''}",
            )
    if ref.count > 0 and _is_constant(ref):
        add("info", "constant_column", f"{name} is constant in the reference")
    if _missing_changed(q_ref, q_cur):
        add(
            "info" if lagging else "warning",
            "missing_share_change",
            f"{name}: missing share went from {q_ref['missing_share']:.2%} "
            f"to {q_cur['missing_share']:.2%}{later}",
        )
    if q_cur["type_errors"]:
        add(
            "warning",
            "type_errors",
            f"{name}: {q_cur['type_errors']} current values do not parse as {entry['type']}",
        )
    if isinstance(cur, NumericProfile) and q_cur.get("out_of_range"):
        add(
            "warning" if q_cur["out_of_range_share"] >= 0.01 else "info",
            "out_of_range",
            f"{name}: {q_cur['out_of_range']} current values ({q_cur['out_of_range_share']:.2%})"
            f" fall outside the reference range [{q_ref['min']:.6g}, {q_ref['max']:.6g}]",
        )
    if isinstance(cur, CategoricalProfile) and q_cur.get("unseen"):
        examples = ", ".join(repr(v) for v in q_cur["top_unseen"][:3])
        add(
            "warning" if q_cur["unseen_share"] >= 0.01 else "info",
            "unseen_categories",
            f"{name}: {q_cur['unseen']} current values ({q_cur['unseen_share']:.2%}) are "
            f"categories not among the reference's, e.g. {examples}",
        )
    return entry, findings


def _is_constant(profile: ColumnProfile) -> bool:
    if isinstance(profile, NumericProfile):
        return profile.minimum == profile.maximum
    return int((profile.counts > 0).sum()) == 1 and not profile.extra
