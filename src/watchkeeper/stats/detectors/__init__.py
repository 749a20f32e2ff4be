"""Sequential change detectors: one stream in, "it changed here" out.

Every detector shares the interface of :class:`Detector` (``update``, vectorised
``update_many``, ``drift_detected``, ``reset``, ``to_dict`` / ``from_dict``) and restarts after
each detection.

* :class:`ADWIN`: adaptive windowing (Bifet & Gavaldà 2007), any bounded stream.
* :class:`PageHinkley`: Page-Hinkley test on deviations from the running mean.
* :class:`BernoulliCUSUM`, :class:`GaussianCUSUM`: log-likelihood-ratio CUSUM charts for 0/1
  error streams and for metric streams, with a raw threshold.
* :class:`CalibratedCUSUM`: a self-starting CUSUM whose threshold comes from a wanted mean
  time between false alarms.

:func:`detector_from_dict` rebuilds any of them from its ``to_dict()``.

Examples
--------
>>> d = CalibratedCUSUM("gaussian", false_alarm_every=10_000)
>>> d.update_many([1.0, 1.2, 0.9] * 20 + [3.0] * 5).tolist()
[60]
>>> detector_from_dict(d.to_dict()).n_seen
65
"""

from __future__ import annotations

from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.adwin import ADWIN
from watchkeeper.stats.detectors.base import Detector
from watchkeeper.stats.detectors.calibrated import CalibratedCUSUM
from watchkeeper.stats.detectors.cusum import BernoulliCUSUM, GaussianCUSUM
from watchkeeper.stats.detectors.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "DETECTOR_TYPES",
    "BernoulliCUSUM",
    "CalibratedCUSUM",
    "Detector",
    "GaussianCUSUM",
    "PageHinkley",
    "detector_from_dict",
]

DETECTOR_TYPES: dict[str, type[Detector]] = {
    cls.type_name: cls
    for cls in (ADWIN, PageHinkley, BernoulliCUSUM, GaussianCUSUM, CalibratedCUSUM)
}


def detector_from_dict(d: dict[str, Any]) -> Detector:
    """Rebuild any detector from its ``to_dict()`` output (dispatch on ``d["type"]``)."""
    kind = d.get("type") if isinstance(d, dict) else None
    cls = DETECTOR_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(f"type must be one of {', '.join(sorted(DETECTOR_TYPES))}, got {kind!r}")
    return cls.from_dict(d)
