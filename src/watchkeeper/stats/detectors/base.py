"""The common shape of every sequential change detector, and its serialised state.

A detector reads one stream, value by value, and says when the stream has changed. Each one
offers the same small interface:

* ``update(x) -> bool``: feed one value; ``True`` when this value completed a detection.
* ``update_many(xs) -> indices``: feed a 1-D array; the positions in ``xs`` of the values that
  completed a detection. It gives exactly the detections a loop of ``update`` would give, but
  runs vectorised (numpy blocks), so it is the one to use on a batch.
* ``drift_detected``: ``True`` right after an update whose last value completed a detection.
* ``reset()``: back to the state of a new detector.
* ``n_seen`` and ``n_detections``: values fed and detections made since creation or ``reset()``.
* ``to_dict()`` / ``from_dict(d)``: a JSON-safe dict of parameters and state, with a ``"type"``
  key, so a service can persist a detector between two evaluations;
  :func:`watchkeeper.stats.detectors.detector_from_dict` rebuilds any of them.

After a detection a detector **restarts**: it forgets what it learnt and learns the stream
afresh from the next value (river's detectors do the same), so a later change is found too.

Examples
--------
>>> from watchkeeper.stats.detectors import PageHinkley
>>> d = PageHinkley()
>>> d.update_many([0.0] * 100 + [1.0] * 100).tolist()
[166]
>>> d.drift_detected, d.n_seen, d.n_detections
(False, 200, 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.errors import InputError

__all__ = ["Detector", "as_finite_array", "as_finite_value", "cusum_path"]

FloatArray = NDArray[np.float64]
Indices = NDArray[np.intp]

# update_many works in blocks that double while nothing is detected; after a detection the
# next block is a few times the distance to it, so frequent detections waste little work
FIRST_BLOCK = 4096
MIN_BLOCK = 256
MAX_BLOCK = 1 << 18
FORMAT_VERSION = 1


def as_finite_value(x: object, name: str = "x") -> float:
    """``x`` as a float, or :class:`InputError` naming ``name`` when it is not a finite number."""
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value}")
    return value


def as_finite_array(xs: ArrayLike, name: str = "xs") -> FloatArray:
    """``xs`` as a 1-D float64 array of finite values (a copy is made only when needed)."""
    try:
        arr = np.asarray(xs, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a 1-D array of numbers") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(f"{name}[{bad[0]}] is {arr[bad[0]]}: values must be finite")
    return arr


def cusum_path(increments: FloatArray, start: float) -> FloatArray:
    """The one-sided CUSUM ``S_t = max(0, S_{t-1} + z_t)`` with ``S_0 = start``, vectorised.

    With ``C_t = z_1 + ... + z_t`` the recursion unrolls to ``S_t = C_t - min(-start,
    min_{s<=t} C_s)`` (Lindley's form), one cumulative sum and one running minimum.
    """
    c = np.cumsum(increments)
    low = np.minimum.accumulate(np.minimum(c, -start))
    return np.asarray(c - low, dtype=np.float64)


def encode_float(value: float) -> float | str:
    """JSON-safe float: infinities become the strings ``"inf"`` / ``"-inf"``."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def decode_float(value: object) -> float:
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return float(value)  # type: ignore[arg-type]


class Detector:
    """Base class of the sequential change detectors (see the module docstring).

    A subclass sets ``type_name`` and implements ``_restart`` (clear what was learnt),
    ``_update_one`` (one value; ``True`` on a detection), ``_scan`` (a block: the index of the
    first detection, or -1 after consuming all of it), ``_params``, ``_state`` and
    ``_load_state``. Restarts after a detection and the bookkeeping live here.
    """

    type_name: ClassVar[str] = "detector"

    def __init__(self) -> None:
        self._n_seen = 0
        self._n_detections = 0
        self._drift = False

    # -- the public interface -------------------------------------------------------------
    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed completed a detection."""
        return self._drift

    @property
    def n_seen(self) -> int:
        """Values fed since creation or the last ``reset()`` (restarts do not clear it)."""
        return self._n_seen

    @property
    def n_detections(self) -> int:
        """Detections since creation or the last ``reset()``."""
        return self._n_detections

    def update(self, x: float) -> bool:
        """Feed one value; ``True`` when it completed a detection (the detector restarts)."""
        value = self._check_value(as_finite_value(x))
        detected = self._update_one(value)
        self._n_seen += 1
        self._drift = detected
        if detected:
            self._n_detections += 1
            self._restart()
        return detected

    def update_many(self, xs: ArrayLike) -> Indices:
        """Feed the values of ``xs`` in order; the positions in ``xs`` that completed a
        detection. Same detections as a loop of :meth:`update`, vectorised."""
        arr = self._check_array(as_finite_array(xs))
        hits: list[int] = []
        pos, block = 0, FIRST_BLOCK
        while pos < arr.size:
            chunk = arr[pos : pos + block]
            j = self._scan(chunk)
            if j < 0:
                pos += chunk.size
                block = min(2 * block, MAX_BLOCK)
                continue
            hits.append(pos + j)
            self._restart()
            pos += j + 1
            block = min(max(4 * (j + 1), MIN_BLOCK), MAX_BLOCK)
        self._n_seen += int(arr.size)
        self._n_detections += len(hits)
        if arr.size:
            self._drift = bool(hits) and hits[-1] == arr.size - 1
        return np.asarray(hits, dtype=np.intp)

    def reset(self) -> None:
        """Back to the state of a freshly built detector."""
        self._n_seen = 0
        self._n_detections = 0
        self._drift = False
        self._restart()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of parameters and state; :meth:`from_dict` reads it back."""
        return {
            "type": self.type_name,
            "version": FORMAT_VERSION,
            "params": self._params(),
            "n_seen": self._n_seen,
            "n_detections": self._n_detections,
            "drift_detected": self._drift,
            "state": self._state(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`to_dict` output; it goes on where it stopped."""
        if not isinstance(d, dict):
            raise InputError(f"detector state must be a dict, got {type(d).__name__}")
        if d.get("type") != cls.type_name:
            raise InputError(
                f"type must be {cls.type_name!r} for {cls.__name__}, got {d.get('type')!r}"
            )
        if d.get("version") != FORMAT_VERSION:
            raise InputError(f"version must be {FORMAT_VERSION}, got {d.get('version')!r}")
        try:
            obj = cls(**d["params"])
            obj._load_state(d["state"])
            obj._n_seen = int(d["n_seen"])
            obj._n_detections = int(d["n_detections"])
            obj._drift = bool(d["drift_detected"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{cls.type_name} state is malformed: {exc!r}") from None
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    # -- what a subclass provides ---------------------------------------------------------
    def _check_value(self, x: float) -> float:
        """Validate one value beyond finiteness (e.g. 0/1 only); returns it."""
        return x

    def _check_array(self, xs: FloatArray) -> FloatArray:
        """Validate a block beyond finiteness; returns it."""
        return xs

    def _restart(self) -> None:
        raise NotImplementedError

    def _update_one(self, x: float) -> bool:
        raise NotImplementedError

    def _scan(self, xs: FloatArray) -> int:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def check_binary(xs: FloatArray, name: str = "xs") -> FloatArray:
    """``xs`` unchanged when every value is 0 or 1 (an error stream), else :class:`InputError`."""
    bad = np.flatnonzero((xs != 0.0) & (xs != 1.0))
    if bad.size:
        raise InputError(f"{name}[{bad[0]}] is {xs[bad[0]]}: an error stream holds only 0 and 1")
    return xs
