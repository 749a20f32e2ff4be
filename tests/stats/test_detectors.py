"""Sequential change detectors: oracles (river, a plain-Python CUSUM, simulation), the shared
contract (update_many ≡ update, reset ≡ fresh, state round trip) and the calibrated
false-alarm rate."""

from __future__ import annotations

import ast
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors import (
    ADWIN,
    DETECTOR_TYPES,
    BernoulliCUSUM,
    CalibratedCUSUM,
    Detector,
    GaussianCUSUM,
    PageHinkley,
    arl,
    detector_from_dict,
)
from watchkeeper.stats.detectors.adwin import row_counts

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "watchkeeper" / "stats" / "detectors"


def _errors(seed: int, rates: list[tuple[float, int]]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([(rng.random(n) < p).astype(np.float64) for p, n in rates])


def _metric(seed: int, parts: list[tuple[float, float, int]], offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return offset + np.concatenate([rng.normal(m, s, n) for m, s, n in parts])


ERRORS = _errors(1, [(0.1, 8000), (0.2, 6000), (0.05, 6000)])
METRIC = _metric(2, [(0, 1, 6000), (0.6, 1, 4000), (0, 2.5, 4000)], offset=50.0)

# (id, factory, stream): every detector, with default and non-default parameters
CASES: list[tuple[str, Callable[[], Detector], np.ndarray]] = [
    ("adwin-errors", ADWIN, ERRORS),
    ("adwin-metric", lambda: ADWIN(delta=0.01, clock=8, max_buckets=3), METRIC),
    ("ph-errors", PageHinkley, ERRORS),
    ("ph-metric", lambda: PageHinkley(threshold=20, alpha=0.999, mode="up"), METRIC),
    ("bernoulli-estimated", BernoulliCUSUM, ERRORS),
    ("bernoulli-given", lambda: BernoulliCUSUM(p0=0.1, p1=0.25, threshold=5), ERRORS),
    ("gaussian-estimated", GaussianCUSUM, METRIC),
    ("gaussian-spread", lambda: GaussianCUSUM(50, 1.0, shift=0.5, threshold=8, spread=2), METRIC),
    ("calibrated-bernoulli", lambda: CalibratedCUSUM(false_alarm_every=20_000), ERRORS),
    ("calibrated-gaussian", lambda: CalibratedCUSUM("gaussian", false_alarm_every=5_000), METRIC),
    (
        "calibrated-gaussian-mean-only",
        lambda: CalibratedCUSUM("gaussian", spread_ratio=1, mean_shift=1.0, warmup=5),
        METRIC,
    ),
]
IDS = [c[0] for c in CASES]


def _loop(detector: Detector, xs: np.ndarray) -> list[int]:
    return [i for i, x in enumerate(xs.tolist()) if detector.update(x)]


def _close(a: Any, b: Any) -> bool:
    """Equal dicts/lists, floats up to rounding (the batch path sums in another order)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize(("name", "make", "xs"), CASES, ids=IDS)
def test_update_many_gives_the_detections_and_state_of_update(
    name: str, make: Callable[[], Detector], xs: np.ndarray
) -> None:
    one, many = make(), make()
    looped = _loop(one, xs)
    batched = many.update_many(xs).tolist()
    assert looped == batched
    assert len(batched) >= 1, "the stream changes: the case must exercise a detection"
    assert _close(one.to_dict(), many.to_dict())
    assert many.n_seen == xs.size and many.n_detections == len(batched)


@pytest.mark.parametrize(("name", "make", "xs"), CASES, ids=IDS)
def test_state_survives_json_round_trips_mid_stream(
    name: str, make: Callable[[], Detector], xs: np.ndarray
) -> None:
    expected = make().update_many(xs).tolist()
    rng = np.random.default_rng(0)
    det, pos, found = make(), 0, []
    while pos < xs.size:
        size = int(rng.integers(1, 3000))
        found += [pos + int(i) for i in det.update_many(xs[pos : pos + size])]
        pos += size
        det = detector_from_dict(json.loads(json.dumps(det.to_dict())))
        assert type(det).from_dict(det.to_dict()).to_dict() == det.to_dict()
    assert found == expected


@pytest.mark.parametrize(("name", "make", "xs"), CASES, ids=IDS)
def test_reset_is_a_fresh_detector_and_input_is_not_mutated(
    name: str, make: Callable[[], Detector], xs: np.ndarray
) -> None:
    det = make()
    copy = xs.copy()
    det.update_many(xs)
    assert np.array_equal(xs, copy)
    det.reset()
    assert det.to_dict() == make().to_dict()
    assert det.update_many(xs).tolist() == make().update_many(xs).tolist()


@pytest.mark.parametrize(("name", "make", "xs"), CASES, ids=IDS)
def test_drift_detected_is_true_right_after_a_detection(
    name: str, make: Callable[[], Detector], xs: np.ndarray
) -> None:
    first = int(make().update_many(xs)[0])
    det = make()
    det.update_many(xs[: first + 1])
    assert det.drift_detected
    det.update_many(xs[first + 1 : first + 2])
    assert not det.drift_detected
    det.update_many([])
    assert not det.drift_detected and det.n_seen == first + 2


@pytest.mark.parametrize("cls", list(DETECTOR_TYPES.values()), ids=list(DETECTOR_TYPES))
def test_every_detector_documents_a_runnable_example_and_a_reference(cls: type[Detector]) -> None:
    module = sys.modules[cls.__module__]
    assert module.__doc__ and "Examples\n--------\n>>> " in module.__doc__
    assert "References" in module.__doc__
    assert cls.__doc__
    assert cls.type_name in DETECTOR_TYPES and cls().to_dict()["type"] == cls.type_name


def test_the_detectors_package_stays_pure() -> None:
    allowed = {"numpy", "scipy", "watchkeeper", "__future__"} | {
        "collections",
        "dataclasses",
        "functools",
        "math",
        "typing",
    }
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("watchkeeper"):
                    assert name.startswith(("watchkeeper.stats", "watchkeeper.errors")), name


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("values", "message"),
    [([0.0, float("nan")], r"xs\[1\] is nan"), ([[1.0, 2.0]], "must be 1-D"), (["a"], "numbers")],
)
def test_bad_values_raise_naming_the_position(values: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ADWIN().update_many(values)


def test_error_streams_take_only_zero_and_one() -> None:
    with pytest.raises(InputError, match=r"xs\[2\] is 2.0"):
        BernoulliCUSUM().update_many([0, 1, 2])
    with pytest.raises(InputError, match=r"x\[0\] is 0.5"):
        CalibratedCUSUM().update(0.5)
    with pytest.raises(InputError, match="x must be finite"):
        PageHinkley().update(float("inf"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ADWIN(delta=0), "delta"),
        (lambda: ADWIN(clock=0), "clock"),
        (lambda: PageHinkley(mode="sideways"), "mode must be one of up, down, both"),
        (lambda: PageHinkley(alpha=0), "alpha"),
        (lambda: BernoulliCUSUM(p0=1.2), "p0"),
        (lambda: BernoulliCUSUM(p1=0.3), "p1"),
        (lambda: BernoulliCUSUM(ratio=1.0), "ratio"),
        (lambda: GaussianCUSUM(std=0), "std"),
        (lambda: GaussianCUSUM(spread=0.5), "spread"),
        (lambda: GaussianCUSUM(warmup=1), "warmup"),
        (lambda: CalibratedCUSUM("poisson"), "kind must be one of bernoulli, gaussian"),
        (lambda: CalibratedCUSUM(mean_shift=1.0), "mean_shift does not apply"),
        (lambda: CalibratedCUSUM(false_alarm_every=1500), "false_alarm_every"),
        (lambda: CalibratedCUSUM("gaussian", spread_ratio=0.5), "spread_ratio"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()


def test_state_of_another_type_or_unknown_type_is_refused() -> None:
    state = ADWIN().to_dict()
    with pytest.raises(InputError, match="type must be 'page_hinkley'"):
        PageHinkley.from_dict(state)
    with pytest.raises(InputError, match="type must be one of"):
        detector_from_dict({**state, "type": "nope"})
    with pytest.raises(InputError, match="malformed"):
        ADWIN.from_dict({**state, "state": {}})
    broken = ADWIN()
    broken.update_many(ERRORS[:100])
    bad = broken.to_dict()
    bad["state"]["width"] += 1
    with pytest.raises(InputError, match="do not add up"):
        ADWIN.from_dict(bad)


# ----------------------------------------------------------------------------- river


def _river_hits(detector: Any, xs: np.ndarray) -> list[int]:
    hits = []
    for i, x in enumerate(xs.tolist()):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


RIVER_STREAMS = {
    "errors": ERRORS,
    "errors-stationary": _errors(3, [(0.3, 30_000)]),
    "metric": METRIC,
    "metric-far-from-zero": _metric(4, [(0, 1, 8000), (0.4, 1, 8000)], offset=1e4),
}


@pytest.mark.parametrize("stream", list(RIVER_STREAMS))
@pytest.mark.parametrize(
    "params", [{}, {"delta": 0.05, "clock": 4, "max_buckets": 3, "min_window_length": 10}]
)
def test_adwin_finds_what_rivers_adwin_finds(stream: str, params: dict[str, Any]) -> None:
    drift = pytest.importorskip("river.drift")
    xs = RIVER_STREAMS[stream]
    theirs = _river_hits(drift.ADWIN(**params), xs)
    ours = ADWIN(**params).update_many(xs).tolist()
    if stream.startswith("errors"):
        assert ours == theirs  # every sum is an integer: the same arithmetic exactly
    else:  # sums in another order may move a detection by one check at most
        clock = params.get("clock", 32)
        assert len(ours) == len(theirs)
        assert all(abs(a - b) <= clock for a, b in zip(ours, theirs, strict=True))
    assert _loop(ADWIN(**params), xs) == ours


@pytest.mark.parametrize("stream", list(RIVER_STREAMS))
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"threshold": 10.0, "mode": "up"},
        {"min_instances": 100, "delta": 0.05, "threshold": 5.0, "alpha": 0.99, "mode": "down"},
    ],
)
def test_page_hinkley_matches_rivers_page_hinkley(stream: str, params: dict[str, Any]) -> None:
    drift = pytest.importorskip("river.drift")
    xs = RIVER_STREAMS[stream]
    theirs = _river_hits(drift.PageHinkley(**params), xs)
    assert PageHinkley(**params).update_many(xs).tolist() == theirs
    assert _loop(PageHinkley(**params), xs) == theirs


def test_adwin_bucket_layout_formula_matches_insertion() -> None:
    det = ADWIN(max_buckets=3)
    for n in range(1, 3000):
        det._update_one(1.0)
        expected = [len(r) for r in det._rows]
        got = [int(c[0]) for c in row_counts(np.asarray([n]), 3)]
        assert got == expected, n


# ----------------------------------------------------------------------------- CUSUM oracle


def _reference_cusum(
    xs: np.ndarray,
    increments: Callable[[float, dict[str, Any]], list[float]],
    threshold: float,
    warmup: int,
    estimate: Callable[[list[float]], dict[str, Any]] | None,
) -> list[int]:
    """Textbook CUSUM: S = max(0, S + z) per chart, alarm over the threshold, then restart."""
    hits: list[int] = []
    seen: list[float] = []
    params: dict[str, Any] = {}
    s: list[float] = []
    for i, x in enumerate(xs.tolist()):
        if estimate is not None and len(seen) < warmup:
            seen.append(x)
            if len(seen) == warmup:
                params = estimate(seen)
            continue
        z = increments(x, params)
        s = [max(0.0, a + b) for a, b in zip(s or [0.0] * len(z), z, strict=True)]
        if max(s) > threshold:
            hits.append(i)
            s, seen = [], []
    return hits


def _bernoulli_z(p0: float, p1: float) -> Callable[[float, dict[str, Any]], list[float]]:
    return lambda x, _: [math.log(p1 / p0) if x else math.log((1 - p1) / (1 - p0))]


def test_bernoulli_cusum_matches_the_textbook_recursion_with_known_rates() -> None:
    xs = _errors(5, [(0.1, 20_000), (0.18, 5000), (0.1, 20_000)])
    expected = _reference_cusum(xs, _bernoulli_z(0.1, 0.2), 4.0, 0, None)
    assert len(expected) >= 3
    assert BernoulliCUSUM(p0=0.1, p1=0.2, threshold=4.0).update_many(xs).tolist() == expected


def test_bernoulli_cusum_matches_the_textbook_recursion_with_a_warm_up() -> None:
    xs = _errors(6, [(0.1, 20_000), (0.2, 5000)])

    def estimate(seen: list[float]) -> dict[str, Any]:
        p0 = (sum(seen) + 0.5) / (len(seen) + 1)
        return {"p0": p0, "p1": min(1.5 * p0, 0.5 * (1 + p0))}

    def z(x: float, p: dict[str, Any]) -> list[float]:
        return _bernoulli_z(p["p0"], p["p1"])(x, p)

    expected = _reference_cusum(xs, z, 4.0, 500, estimate)
    assert len(expected) >= 2
    assert BernoulliCUSUM(threshold=4.0, warmup=500).update_many(xs).tolist() == expected


def test_gaussian_cusum_matches_the_textbook_tabular_cusum() -> None:
    """shift = 2k and threshold = 2k·h in nats is the tabular CUSUM (k, h) in σ units."""
    xs = _metric(7, [(10, 2, 5000), (11, 2, 1000), (10, 3, 4000)])
    k, h = 0.25, 8.0

    def tabular(x: float, _: dict[str, Any]) -> list[float]:
        u = (x - 10.0) / 2.0
        return [u - k, -u - k]

    expected = _reference_cusum(xs, tabular, h, 0, None)
    assert len(expected) >= 3
    got = GaussianCUSUM(10.0, 2.0, shift=2 * k, threshold=2 * k * h).update_many(xs).tolist()
    assert got == expected


def test_gaussian_cusum_with_estimates_and_spread_matches_the_recursion() -> None:
    xs = _metric(8, [(3, 1, 3000), (3, 2, 1000)])
    rho, warmup = 1.8, 200

    def estimate(seen: list[float]) -> dict[str, Any]:
        return {"mean": float(np.mean(seen)), "std": float(np.std(seen, ddof=1))}

    def z(x: float, p: dict[str, Any]) -> list[float]:
        u = (x - p["mean"]) / p["std"]
        return [u - 0.5, -u - 0.5, 0.5 * (1 - rho**-2) * u * u - math.log(rho)]

    expected = _reference_cusum(xs, z, 6.0, warmup, estimate)
    det = GaussianCUSUM(threshold=6.0, spread=rho, warmup=warmup)
    assert det.update_many(xs).tolist() == expected
    assert any(i >= 3000 for i in expected)


# ----------------------------------------------------------------------------- ARL


def _simulated_arl(draw: Callable[[np.random.Generator, int], np.ndarray], h: float) -> float:
    """Mean run length of S = max(0, S + z) from S = 0 to S > h, over 3000 simulated runs."""
    rng = np.random.default_rng(11)
    s = np.zeros(3000)
    lengths = np.zeros(3000)
    alive = np.ones(3000, dtype=bool)
    t = 0
    while alive.any():
        t += 1
        idx = np.flatnonzero(alive)
        s[idx] = np.maximum(0.0, s[idx] + draw(rng, idx.size))
        stopped = idx[s[idx] > h]
        lengths[stopped] = t
        alive[stopped] = False
    return float(lengths.mean())


def test_gaussian_arl_matches_the_published_value_and_simulation() -> None:
    # Hawkins & Olwell (1998): the one-sided k = 0.5, h = 5 CUSUM has ARL0 = 930.9
    assert arl.gaussian_arl(1.0, 5.0) == pytest.approx(930.9, abs=0.5)
    h = 4.0
    sim = _simulated_arl(lambda rng, n: 0.5 * rng.normal(size=n) - 0.125, h)
    assert arl.gaussian_arl(0.5, h) == pytest.approx(sim, rel=0.06)


def test_spread_and_bernoulli_arl_match_simulation() -> None:
    rho, h = 1.5, 4.0
    c = 0.5 * (1 - rho**-2)
    sim = _simulated_arl(lambda rng, n: c * rng.normal(size=n) ** 2 - math.log(rho), h)
    assert arl.spread_arl(rho, h) == pytest.approx(sim, rel=0.06)
    p0, p1 = 0.1, 0.15
    a, b = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    sim = _simulated_arl(lambda rng, n: np.where(rng.random(n) < p0, a, b), 2.5)
    assert arl.bernoulli_arl(p0, 1.5, 2.5) == pytest.approx(sim, rel=0.06)


def test_threshold_for_arl_inverts_the_run_length() -> None:
    h = arl.threshold_for_arl(lambda t: arl.gaussian_arl(0.5, t), 50_000)
    assert arl.gaussian_arl(0.5, h) == pytest.approx(50_000, rel=1e-3)
    with pytest.raises(InputError, match="too short"):
        arl.threshold_for_arl(lambda t: arl.bernoulli_arl(0.1, 1.5, t), 2)


# ----------------------------------------------------------------------------- calibration


@pytest.mark.parametrize(
    ("kind", "draw"),
    [
        ("bernoulli", lambda rng, n: (rng.random(n) < 0.1).astype(float)),
        ("bernoulli", lambda rng, n: (rng.random(n) < 0.02).astype(float)),
        ("gaussian", lambda rng, n: rng.normal(-40.0, 7.0, n)),
    ],
    ids=["p=0.10", "p=0.02", "normal"],
)
def test_calibrated_false_alarm_rate_is_the_one_asked_for(
    kind: str, draw: Callable[[np.random.Generator, int], np.ndarray]
) -> None:
    every, n = 5_000, 2_000_000
    det = CalibratedCUSUM(kind, false_alarm_every=every)
    alarms = det.update_many(draw(np.random.default_rng(21), n)).size
    expected = n / every
    # run lengths are close to geometric, so the count is close to Poisson: ±4 sd, and 10 %
    # for the approximations (Markov-chain ARL, rounded p̂, concurrent charts)
    slack = 4 * math.sqrt(expected) + 0.1 * expected
    assert abs(alarms - expected) <= slack, (alarms, expected)


def test_calibrated_cusum_finds_changes_sooner_than_adwin() -> None:
    delays: dict[str, list[int]] = {"calibrated": [], "adwin": []}
    for seed in range(5):
        xs = _errors(100 + seed, [(0.1, 20_000), (0.2, 5000)])
        for name, det in (("calibrated", CalibratedCUSUM()), ("adwin", ADWIN())):
            after = [int(i) for i in det.update_many(xs) if i >= 20_000]
            delays[name].append(after[0] - 20_000 if after else 5000)
    assert np.mean(delays["calibrated"]) < np.mean(delays["adwin"])


def test_calibrated_thresholds_are_set_once_the_warm_up_ends() -> None:
    det = CalibratedCUSUM(false_alarm_every=50_000, warmup=100)
    det.update_many(np.zeros(99))
    assert det.thresholds == []
    det.update(1.0)
    expected = arl.threshold_for_arl(lambda h: arl.bernoulli_arl(0.015, 1.5, h), 49_900)
    assert det.thresholds == [pytest.approx(expected, abs=1e-4)]  # p̂ = 1.5 / 101 → 0.015
    assert det.in_control == {"p0": pytest.approx(1.5 / 101)}


def test_calibrated_cusum_states_what_its_guarantee_assumes() -> None:
    from watchkeeper.stats.detectors.calibrated import ASSUMES

    for kind in ("bernoulli", "gaussian"):
        state = CalibratedCUSUM(kind).to_dict()
        assert state["assumes"] == ASSUMES and "independent" in ASSUMES
        assert CalibratedCUSUM.from_dict(state).to_dict() == state
