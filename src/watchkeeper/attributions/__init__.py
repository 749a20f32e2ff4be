"""Why: per-feature attributions of the model's output (SHAP, or a surrogate of the model when
there is none), their drift against the reference, and the drift impact that ranks drifted
features by how much the model relies on them. See ``docs/explain.md``.

SHAP is an optional extra: ``pip install 'watchkeeper[explain]'``.
"""

from watchkeeper.attributions.drift import (
    AttributionDrift,
    FeatureAttribution,
    attribution_drift,
    fidelity_note,
)
from watchkeeper.attributions.explainers import Explained, Explainer, MissingShap, kind_of
from watchkeeper.attributions.fit import AttributionFit, Codes, fit_attributions, fit_surrogate
from watchkeeper.attributions.impact import Impact, drift_impact
from watchkeeper.attributions.section import (
    attributions_option,
    impact_of,
    window_attributions,
)

__all__ = [
    "AttributionDrift",
    "AttributionFit",
    "Codes",
    "Explained",
    "Explainer",
    "FeatureAttribution",
    "Impact",
    "MissingShap",
    "attribution_drift",
    "attributions_option",
    "drift_impact",
    "fidelity_note",
    "fit_attributions",
    "fit_surrogate",
    "impact_of",
    "kind_of",
    "window_attributions",
]
