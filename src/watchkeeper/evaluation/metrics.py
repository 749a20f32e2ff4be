"""The catalogue of window metrics: one entry per metric the evaluator writes for a window.

Every reader takes its list from here, so a new window metric is one entry in
:data:`CATALOGUE` (and a row in docs/service.md's window metrics, and one in its Prometheus
table for each new family it is exported in):

* the evaluator (:mod:`watchkeeper.evaluation.evaluate`) writes a performance metric for each
  entry of its task (the aggregate's metric of that name) and a latency quantile for each
  entry with a ``quantile``;
* the alert monitors (:mod:`watchkeeper.alerts.monitors`) accept every name here, per feature
  or not, with its sample size from ``sample``;
* ``/metrics`` (:mod:`watchkeeper.server.metrics`) exports every entry with ``exports``,
  each into its Prometheus families (one unit per family, named by it): the value of the
  champion's newest window, or of its newest labelled window for an entry whose ``sample``
  is ``labels``;
* the dashboard (:mod:`watchkeeper.server.dashboard`) names each metric by its ``label`` and
  formats its values with the filter named by ``format``.

``tests/dashboard/test_metric_catalogue.py`` checks each entry against each reader, so the
catalogue cannot drift from them; ``tests/service/test_prometheus.py`` checks the families
against the Prometheus naming rules, the Grafana dashboard and the docs.

>>> CATALOGUE["latency_p95"].unit, CATALOGUE["latency_p95"].label
('seconds', 'p95')
>>> [m.name for m in performance("regression")]
['mae', 'rmse', 'r2']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Source = Literal["drift", "data_quality", "performance", "operations"]
Format = Literal["num", "pct", "ms", "compact"]
Task = Literal["classification", "regression"]
Label = Literal["model", "version", "feature", "percentile"]
# the name a Prometheus family ends with for the unit of the metrics in it (base units only)
UNIT_SUFFIXES = {"seconds": "_seconds", "ratio": "_ratio"}


@dataclass(frozen=True)
class Export:
    """A Prometheus family that a window's value of a metric is exported in.

    ``labels`` are filled with the model's name, the window's version, the point's feature and
    the metric's ``percentile``; ``detail`` exports ``detail[detail]`` of the point instead of
    its value. Several metrics of one unit may share a family (told apart by ``percentile``:
    ``quantile`` is the label of a Prometheus summary): they share its help text too. A
    family's name ends with its unit's suffix (:data:`UNIT_SUFFIXES`)."""

    name: str
    type: Literal["gauge"]
    help: str
    labels: tuple[Label, ...]
    detail: str | None = None


@dataclass(frozen=True)
class WindowMetric:
    """One window metric and what each reader needs to know of it.

    ``sample`` names the window metric holding its sample size (``count``: the window's
    events, ``labels``: its labelled predictions); ``task`` the models a performance metric
    applies to, read from the task's aggregate (``scored``: the aggregate of the labelled
    predictions that carried a score); ``quantile`` makes an operations metric a quantile of
    the latency histogram; ``dashboard`` says whether the model or feature page shows it;
    ``exports`` the Prometheus families ``/metrics`` exports it in (those of a metric whose
    sample is ``labels`` read the newest window that has labels, so they stay while labels
    lag).
    ``estimated`` marks a metric of the task estimated before labels arrive (its points come
    from :mod:`watchkeeper.evaluation.estimated`, not from the labels' aggregate).
    ``source``, ``unit``, ``description`` and ``higher_is_better`` describe it for people
    (and for readers to come, such as monitors that know which way is worse)."""

    name: str
    source: Source
    unit: str
    description: str
    label: str
    format: Format
    higher_is_better: bool | None
    sample: Literal["count", "labels"] = "count"
    per_feature: bool = False
    task: Task | None = None
    scored: bool = False
    quantile: float | None = None
    dashboard: bool = True
    exports: tuple[Export, ...] = ()
    estimated: bool = False  # estimated without labels (a WindowSeries), not from the aggregate

    @property
    def percentile(self) -> str | None:
        """The ``quantile`` in percent, as its Prometheus label says it.

        >>> CATALOGUE["latency_p95"].percentile, CATALOGUE["count"].percentile
        ('95', None)
        """
        return None if self.quantile is None else f"{self.quantile * 100:g}"


WINDOW: tuple[Label, ...] = ("model", "version")  # the labels of a model-level metric


def _gauge(name: str, text: str, *labels: Label, detail: str | None = None) -> Export:
    return Export(f"watchkeeper_{name}", "gauge", text, labels or WINDOW, detail)


def _performance(
    name: str, task: Task, description: str, unit: str, *, higher: bool
) -> WindowMetric:
    suffix = UNIT_SUFFIXES.get(unit, "")
    return WindowMetric(
        name,
        "performance",
        unit,
        description,
        label=name,
        format="num",
        higher_is_better=higher,
        sample="labels",
        task=task,
        exports=(
            _gauge(
                f"performance_{name}{suffix}",
                f"{name} of the newest labelled window: {description}.",
            ),
        ),
    )


def _estimated(name: str, task: Task, unit: str, *, higher: bool) -> WindowMetric:
    suffix = UNIT_SUFFIXES.get(unit, "")
    how = "CBPE" if task == "classification" else "DLE"
    return WindowMetric(
        f"estimated_{name}",
        "performance",
        unit,
        f"{name} estimated without labels ({how}) from the window's rows; detail: the "
        "interval (low, high), the reference's realized value",
        label=f"estimated {name}",
        format="num",
        higher_is_better=higher,
        task=task,
        estimated=True,
        exports=(
            _gauge(
                f"estimated_{name}{suffix}",
                f"{name} of the newest window estimated without labels ({how}).",
            ),
        ),
    )


_LATENCY = _gauge(
    "window_latency_seconds",
    "Latency percentile of the newest window, interpolated in the latency histogram.",
    "model",
    "version",
    "percentile",
)


def _latency(q: float) -> WindowMetric:
    short = f"p{round(q * 100)}"
    return WindowMetric(
        f"latency_{short}",
        "operations",
        "seconds",
        f"the {short} latency, interpolated in the latency histogram",
        label=short,
        format="ms",
        higher_is_better=False,
        quantile=q,
        exports=(_LATENCY,),
    )


_ENTRIES = (
    WindowMetric(
        "drift_statistic",
        "drift",
        "statistic",
        "the drift statistic of a feature; detail: threshold, drifted, method, effect size",
        label="statistic",
        format="num",
        higher_is_better=False,
        per_feature=True,
        exports=(
            _gauge(
                "feature_drift_statistic",
                "Drift statistic of a feature in the newest window.",
                *WINDOW,
                "feature",
            ),
            _gauge(
                "feature_drift_threshold",
                "Calibrated drift threshold of a feature in the newest window.",
                *WINDOW,
                "feature",
                detail="threshold",
            ),
        ),
    ),
    WindowMetric(
        "prediction_drift",
        "drift",
        "statistic",
        "the drift statistic of a model output (the prediction or a score column), kept apart "
        "from the features' drift",
        label="prediction drift",
        format="num",
        higher_is_better=False,
        per_feature=True,
        exports=(
            _gauge(
                "prediction_drift_statistic",
                "Drift statistic of a model output (prediction or score) in the newest window.",
                *WINDOW,
                "feature",
            ),
            _gauge(
                "prediction_drift_threshold",
                "Calibrated drift threshold of a model output in the newest window.",
                *WINDOW,
                "feature",
                detail="threshold",
            ),
        ),
    ),
    WindowMetric(
        "drifted_share",
        "drift",
        "ratio",
        "the share of drift features that drifted",
        label="share of features drifted",
        format="pct",
        higher_is_better=False,
        exports=(
            _gauge(
                "drifted_features_ratio",
                "Share of drift features that drifted in the newest window.",
            ),
        ),
    ),
    WindowMetric(
        "multivariate_pca",
        "drift",
        "statistic",
        "the window's mean PCA reconstruction error against the version's reference, a change "
        "in how the features move together; detail: the no-drift band (lower_threshold, "
        "threshold = upper_threshold), drifted, side (error rose or fell), the PCA's figures",
        label="PCA reconstruction error",
        format="num",
        higher_is_better=False,
        exports=(
            _gauge(
                "multivariate_pca_statistic",
                "Mean PCA reconstruction error of the newest window (multivariate drift).",
            ),
            _gauge(
                "multivariate_pca_threshold",
                "Upper bound of the PCA reconstruction error's no-drift band in the newest window.",
                detail="threshold",
            ),
            _gauge(
                "multivariate_pca_lower_threshold",
                "Lower bound of the PCA reconstruction error's no-drift band in the newest window.",
                detail="lower_threshold",
            ),
        ),
    ),
    WindowMetric(
        "missing_share",
        "data_quality",
        "ratio",
        "the share of missing values of a profiled column",
        label="missing",
        format="pct",
        higher_is_better=False,
        per_feature=True,
        exports=(
            _gauge(
                "feature_missing_ratio",
                "Share of missing values of a column in the newest window.",
                *WINDOW,
                "feature",
            ),
        ),
    ),
    WindowMetric(
        "count",
        "operations",
        "events",
        "the events of the window",
        label="events",
        format="compact",
        higher_is_better=None,
        exports=(_gauge("window_events", "Events of the newest window."),),
    ),
    WindowMetric(
        "error_rate",
        "operations",
        "ratio",
        "the share of events with status error",
        label="error rate",
        format="pct",
        higher_is_better=False,
        exports=(
            _gauge("window_error_ratio", "Share of events with status error, newest window."),
        ),
    ),
    _latency(0.5),
    _latency(0.95),
    _latency(0.99),
    WindowMetric(
        "labels",
        "performance",
        "labels",
        "the labelled predictions of the window",
        label="labelled",
        format="compact",
        higher_is_better=None,
        sample="labels",
        exports=(
            _gauge("performance_labels", "Labelled predictions of the newest labelled window."),
        ),
    ),
    _performance(
        "accuracy", "classification", "share of correct predictions", "ratio", higher=True
    ),
    _performance(
        "f1", "classification", "F1 (binary: positive class; else macro)", "ratio", higher=True
    ),
    _performance("precision", "classification", "precision, as f1", "ratio", higher=True),
    _performance("recall", "classification", "recall, as f1", "ratio", higher=True),
    WindowMetric(
        "roc_auc",
        "performance",
        "ratio",
        "ROC AUC of a binary model over the labelled predictions that carried a score",
        label="roc_auc",
        format="num",
        higher_is_better=True,
        sample="labels",
        task="classification",
        scored=True,
        exports=(
            _gauge(
                "performance_roc_auc_ratio",
                "roc_auc of the newest labelled window: ROC AUC over the labelled predictions "
                "that carried a score.",
            ),
        ),
    ),
    _performance("mae", "regression", "mean absolute error", "target unit", higher=False),
    _performance("rmse", "regression", "root mean squared error", "target unit", higher=False),
    _performance("r2", "regression", "coefficient of determination", "score", higher=True),
    _estimated("accuracy", "classification", "ratio", higher=True),
    _estimated("precision", "classification", "ratio", higher=True),
    _estimated("recall", "classification", "ratio", higher=True),
    _estimated("f1", "classification", "ratio", higher=True),
    _estimated("roc_auc", "classification", "ratio", higher=True),
    _estimated("mae", "regression", "target unit", higher=False),
    _estimated("rmse", "regression", "target unit", higher=False),
)

CATALOGUE: Mapping[str, WindowMetric] = {m.name: m for m in _ENTRIES}


def performance(task: Task) -> tuple[WindowMetric, ...]:
    """The performance metrics a model of ``task`` gets from its labels (``labels`` aside)."""
    return tuple(m for m in _ENTRIES if m.task == task and not m.estimated)


def estimated(task: Task) -> tuple[WindowMetric, ...]:
    """The metrics a model of ``task`` gets estimated before its labels arrive."""
    return tuple(m for m in _ENTRIES if m.task == task and m.estimated)


def latency() -> dict[str, float]:
    """The latency metrics: name → quantile of the latency histogram, in increasing order.

    >>> latency()
    {'latency_p50': 0.5, 'latency_p95': 0.95, 'latency_p99': 0.99}
    """
    return {m.name: m.quantile for m in _ENTRIES if m.quantile is not None}


def label(name: str) -> str:
    """How the dashboard names a metric (its own name when it is not catalogued).

    >>> label("error_rate"), label("nonesuch")
    ('error rate', 'nonesuch')
    """
    metric = CATALOGUE.get(name)
    return name if metric is None else metric.label
