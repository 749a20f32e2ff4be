"""Drift impact: the drifted features ranked by how much they matter to the model.

impact = the feature's drift effect size × its share of the model's mean |attribution| on the
reference. "income drifted and carries 40 % of the model's attribution" comes first; a
drifted feature the model ignores comes last.

Examples
--------
>>> rows = drift_impact({"income": 0.3, "zip": 0.5}, {"income": 0.4, "zip": 0.01, "age": 0.59})
>>> [(r.feature, round(r.impact, 3)) for r in rows]
[('income', 0.12), ('zip', 0.005)]
>>> rows[0].sentence()
"income drifted and carries 40 % of the model's attribution"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class Impact:
    feature: str
    effect_size: float
    share: float  # of the model's mean |attribution| on the reference
    impact: float
    approximate: str = ""  # the surrogate's note, when the shares are a surrogate's

    def sentence(self) -> str:
        pct = f"{self.share * 100:.0f} %" if self.share >= 0.01 else "under 1 %"
        return f"{self.feature} drifted and carries {pct} of the model's attribution" + (
            self.approximate
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "effect_size": self.effect_size,
            "attribution_share": self.share,
            "impact": self.impact,
            "message": self.sentence(),
        }


def drift_impact(
    drifted: Mapping[str, float], shares: Mapping[str, float], approximate: str = ""
) -> list[Impact]:
    """The ``drifted`` features (name → effect size) ranked by effect size × attribution
    share (features the model does not read: share 0)."""
    rows = [
        Impact(name, float(effect), float(shares.get(name, 0.0)), 0.0, approximate)
        for name, effect in drifted.items()
    ]
    for r in rows:
        r.impact = r.effect_size * r.share
    rows.sort(key=lambda r: (-r.impact, -r.effect_size))
    return rows
