"""The half of a window's evaluation that depends on its profile only: the drift of each
feature and model output, the drifted share and the missing shares; and a small cache of it.

A closed window is evaluated again whenever labels for its predictions arrive, as often as
every evaluator pass while late labels trickle in. Its profile has not changed then, so
neither has its drift; yet each drift decision calibrates a threshold by simulation (tens of
milliseconds a column: 0.75 s a pass for a model of 25 features, the soak's server CPU
doubling once its first window closed). :class:`DriftCache` keeps the points of the windows
evaluated last, each under a digest of the profile it was computed from and of the profile it
was compared with; a window whose profile changed (late events) or whose rolling reference
changed misses, so the points are always those a fresh computation gives. A miss still
shares the calibration simulations (:class:`~watchkeeper.evaluation.noise.NoiseCache`) with
the window's other columns and with the windows evaluated before it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from watchkeeper.attributions.drift import fidelity_note
from watchkeeper.attributions.impact import drift_impact
from watchkeeper.evaluation.noise import NoiseCache
from watchkeeper.profiles import DatasetProfile
from watchkeeper.quality import column_quality
from watchkeeper.schema import Role
from watchkeeper.stats.drift import column_drift
from watchkeeper.store.state import Store

ALPHA = 0.01
CACHED_WINDOWS = 256  # windows (per version and segment) whose drift points are kept


def point(metric: str, feature: str, value: float | None, detail: Any = None) -> dict[str, Any]:
    """One metric point as written: a value that is not finite is stored as None."""
    return {
        "metric": metric,
        "feature": feature,
        "value": None if value is None or not np.isfinite(value) else float(value),
        "detail": detail,
    }


def reference_of(row: dict[str, Any]) -> dict[str, Any]:
    """What a bucket's drift was measured against, for the points' detail."""
    ref = row.get("reference_row")
    if ref is None:
        return {"reference": "training"}
    return {"reference": "previous_window", "reference_window_start": ref["bucket"]}


@dataclass(frozen=True)
class ProfilePoints:
    """The profile's points of one window and the counts its summary gives."""

    points: tuple[dict[str, Any], ...]
    drifted: int
    checked: int


def profile_points(
    store: Store,
    model: str,
    row: dict[str, Any],
    noise_cache: NoiseCache | None = None,
    attributions: dict[str, Any] | None = None,
) -> ProfilePoints:
    """``drift_statistic`` / ``prediction_drift`` per column, ``drifted_share`` and
    ``missing_share`` per feature of one bucket-profile row (see ``evaluate.window_points``).
    ``noise_cache`` keeps the calibration simulations for later windows (without it they are
    shared by this window's columns only); the points are the same either way.

    With the version's attribution shares (``attributions``, default: read from the store),
    ``drifted_share``'s detail has the window's ``drift_impact``: its drifted features ranked
    by effect size × attribution share (docs/explain.md)."""
    noise = NoiseCache() if noise_cache is None else noise_cache
    if attributions is None:
        attributions = store.reference_attributions(model, row["version"])
    schema, reference = store.reference(model, row["version"])
    if row.get("reference_row") is not None:
        reference = DatasetProfile.from_bytes(row["reference_row"]["profile"])
    current = DatasetProfile.from_bytes(row["profile"])
    points: list[dict[str, Any]] = []
    drift_cols = [c.name for c in schema.drift_columns()]
    outputs = [c.name for c in (*schema.by_role(Role.PREDICTION), *schema.by_role(Role.SCORE))]
    drift_cols += [name for name in outputs if name not in drift_cols]
    if row["segment"] not in ("", "*"):
        # a segment's view fixes every segment column (the key names them all): their values
        # differ from the whole reference's by construction, which is not drift
        fixed = set(store.model(model).segments)
        drift_cols = [c for c in drift_cols if c not in fixed]
    drifted = checked = 0
    top: list[tuple[float, str]] = []
    effects: dict[str, float] = {}  # the drifted features' effect sizes
    for name in drift_cols:
        ref, cur = reference.columns.get(name), current.columns.get(name)
        if ref is None or cur is None or cur.count == 0:
            continue
        d = column_drift(name, ref, cur, alpha=ALPHA, noise_cache=noise)
        if d.statistic is None:
            continue
        is_feature = name not in outputs
        detail = {
            "threshold": d.threshold,
            "drifted": d.drifted,
            "method": d.method,
            "effect_size": d.effect_size,
            **({"companion": d.companion} if d.companion else {}),
            **reference_of(row),
        }
        metric = "drift_statistic" if is_feature else "prediction_drift"
        points.append(point(metric, name, d.statistic, detail))
        if is_feature:
            checked += 1
            drifted += d.drifted
            top.append((d.effect_size or 0.0, name))
            if d.drifted:
                effects[name] = d.effect_size or 0.0
    share = drifted / checked if checked else None
    top_names = [n for _, n in sorted(top, reverse=True)[:5]]
    summary: dict[str, Any] = {"drifted": drifted, "checked": checked, "top": top_names}
    if attributions:
        summary["drift_impact"] = impact_rows(effects, attributions)
    points.append(point("drifted_share", "", share, summary))
    for name, prof in current.columns.items():
        points.append(point("missing_share", name, column_quality(prof)["missing_share"]))
    return ProfilePoints(tuple(points), drifted, checked)


def impact_rows(effects: dict[str, float], attributions: dict[str, Any]) -> list[dict[str, Any]]:
    """The drift impact of a window's drifted features (name → effect size) with the
    version's attribution shares: largest first, each with its sentence (and, for a
    surrogate's shares, ``approximate`` and the fidelity)."""
    source = str(attributions.get("source", "model"))
    fidelity = attributions.get("fidelity")
    rows = []
    for r in drift_impact(effects, attributions["shares"], fidelity_note(source, fidelity)):
        out = r.to_dict()
        if source == "surrogate":
            out |= {"approximate": True, "fidelity": fidelity}
        rows.append(out)
    return rows


class WindowSeries(Protocol):
    """A per-window series beyond the profile's (``multivariate_pca``, ...): the points of
    one bucket-profile row. Like the profile's points, they must depend only on the window's
    events (its profile changes whenever they do) and on the version, not on its labels: they
    are cached with them (:class:`DriftCache`)."""

    def __call__(self, store: Store, model: str, row: dict[str, Any]) -> list[dict[str, Any]]: ...


T = TypeVar("T")


class VersionState(Generic[T]):
    """A version's stored state for a series (``read``: its bytes from the store, or None),
    decoded once per version: versions never change."""

    def __init__(
        self, read: Callable[[Store, str, str], bytes | None], decode: Callable[[bytes], T]
    ) -> None:
        self._read, self._decode = read, decode
        self._states: dict[tuple[str, str], T | None] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, model: str, version: str) -> T | None:
        key = (model, version)
        with self._lock:
            if key not in self._states:
                blob = self._read(store, model, version)
                self._states[key] = None if blob is None else self._decode(blob)
            return self._states[key]


def with_series(
    computed: ProfilePoints,
    store: Store,
    model: str,
    row: dict[str, Any],
    series: Sequence[WindowSeries],
) -> ProfilePoints:
    """The profile's points and those of each of ``series``."""
    extra = [p for hook in series for p in hook(store, model, row)]
    if not extra:
        return computed
    return ProfilePoints(computed.points + tuple(extra), computed.drifted, computed.checked)


def _digest(row: dict[str, Any], attributions: dict[str, Any] | None = None) -> bytes:
    """What a window's profile points are computed from: its profile and, for a rolling
    reference, the previous window's (a version's training reference never changes), and the
    version's attribution shares (an artifact attached later brings them)."""
    h = hashlib.blake2b(row["profile"], digest_size=16)
    ref = row.get("reference_row")
    h.update(b"\0training" if ref is None else ref["profile"])
    if attributions:
        h.update(json.dumps(attributions, sort_keys=True).encode())
    return h.digest()


class DriftCache:
    """The profile points of the last :data:`CACHED_WINDOWS` windows evaluated, with the
    points of its ``series``, reused while their profile and reference are those they were
    computed from."""

    def __init__(self, size: int = CACHED_WINDOWS, series: Sequence[WindowSeries] = ()) -> None:
        self.size = size
        self.series = list(series)  # computed with the profile's points, cached with them
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[bytes, ProfilePoints]] = OrderedDict()
        self.noise = NoiseCache()  # what a miss simulates, for the misses after it

    def points(self, store: Store, model: str, row: dict[str, Any]) -> ProfilePoints:
        key = (model, row["version"], row["segment"], row["granularity"], row["bucket"])
        attributions = store.reference_attributions(model, row["version"])
        digest = _digest(row, attributions)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == digest:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        self.misses += 1
        computed = profile_points(store, model, row, self.noise, attributions or {})
        computed = with_series(computed, store, model, row, self.series)
        self._entries[key] = (digest, computed)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return computed
