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

:data:`DETECTORS` is the one registry: the name a monitor uses (``detector: {type: cusum}``),
the class for a 0/1 stream and the class for a stream of metric values. A new detector is its
own module and one entry there; monitors, their checks and ``detector_from_dict`` follow.

Examples
--------
>>> d = CalibratedCUSUM("gaussian", false_alarm_every=10_000)
>>> d.update_many([1.0, 1.2, 0.9] * 20 + [3.0] * 5).tolist()
[60]
>>> detector_from_dict(d.to_dict()).n_seen
65
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.adwin import ADWIN
from watchkeeper.stats.detectors.base import Detector
from watchkeeper.stats.detectors.calibrated import CalibratedCUSUM
from watchkeeper.stats.detectors.cusum import BernoulliCUSUM, GaussianCUSUM
from watchkeeper.stats.detectors.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "DETECTORS",
    "DETECTOR_TYPES",
    "BernoulliCUSUM",
    "CalibratedCUSUM",
    "Detector",
    "DetectorKind",
    "GaussianCUSUM",
    "PageHinkley",
    "detector_from_dict",
]


@dataclass(frozen=True)
class DetectorKind:
    """A detector as monitors name and build it.

    ``binary`` reads a 0/1 stream (a monitor's ``metric: error``), ``real`` a stream of metric
    values; ``*_defaults`` are arguments set for that stream unless given; ``reference_rate``
    names the argument that defaults to the reference's error rate on a 0/1 stream.
    """

    name: str
    binary: type[Detector]
    real: type[Detector]
    binary_defaults: Mapping[str, Any] = field(default_factory=dict)
    real_defaults: Mapping[str, Any] = field(default_factory=dict)
    reference_rate: str | None = None

    def build(self, options: Mapping[str, Any], *, binary: bool) -> Detector:
        """The detector for a stream; unknown or bad arguments raise TypeError or ValueError.

        >>> DETECTORS["calibrated"].build({}, binary=False).kind
        'gaussian'
        """
        cls, defaults = (
            (self.binary, self.binary_defaults) if binary else (self.real, self.real_defaults)
        )
        make: Callable[..., Detector] = cls  # each class has arguments of its own
        try:
            return make(**{**defaults, **options})
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}".replace("__init__() ", "")) from None


# the registry: a monitor's ``detector: {type: <name>}`` → its classes
DETECTORS: dict[str, DetectorKind] = {
    kind.name: kind
    for kind in (
        DetectorKind("cusum", BernoulliCUSUM, GaussianCUSUM, reference_rate="p0"),
        DetectorKind("adwin", ADWIN, ADWIN),
        DetectorKind("page_hinkley", PageHinkley, PageHinkley),
        DetectorKind(
            "calibrated",
            CalibratedCUSUM,
            CalibratedCUSUM,
            binary_defaults={"kind": "bernoulli"},
            real_defaults={"kind": "gaussian"},
        ),
    )
}
# every class by its ``type_name``: what ``to_dict()`` writes and detector_from_dict reads
DETECTOR_TYPES: dict[str, type[Detector]] = {
    cls.type_name: cls for kind in DETECTORS.values() for cls in (kind.binary, kind.real)
}


def detector_from_dict(d: dict[str, Any]) -> Detector:
    """Rebuild any detector from its ``to_dict()`` output (dispatch on ``d["type"]``)."""
    kind = d.get("type") if isinstance(d, dict) else None
    cls = DETECTOR_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(f"type must be one of {', '.join(sorted(DETECTOR_TYPES))}, got {kind!r}")
    return cls.from_dict(d)
