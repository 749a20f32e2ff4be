"""Multivariate drift: changes in how the input features move together, which per-column
tests cannot see (``docs/multivariate.md``). The PCA reconstruction error (on by default in
``compare()``) and the domain classifier (opt-in), both decided at a stated false-alarm rate."""

from watchkeeper.multivariate.drift import (
    CHOICES,
    DEFAULT,
    METHODS,
    MethodResult,
    MultivariateDrift,
    MultivariateFit,
    feature_columns,
    fit_multivariate,
    methods_of,
    multivariate_drift,
)

__all__ = [
    "CHOICES",
    "DEFAULT",
    "METHODS",
    "MethodResult",
    "MultivariateDrift",
    "MultivariateFit",
    "feature_columns",
    "fit_multivariate",
    "methods_of",
    "multivariate_drift",
]
