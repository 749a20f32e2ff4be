"""Calibrated drift decisions keep the false-alarm rate that was asked for, and still find drift."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from watchkeeper.stats import distances
from watchkeeper.stats.calibration import either_quantiles, null_threshold
from watchkeeper.stats.categorical import CategoricalProfile, top_categories
from watchkeeper.stats.drift import NUMERIC_METHODS, column_drift
from watchkeeper.stats.numeric import NumericProfile, quantile_edges

ALPHA = 0.05
TRIALS = 400


def _numeric(ref: np.ndarray, cur: np.ndarray, **kw: object):
    edges = quantile_edges(np.sort(ref), 100)
    return NumericProfile.build(ref, edges), NumericProfile.build(cur, edges)


def _false_alarms(method: str, draw, n_ref: int, n_cur: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    alarms = 0
    cache: dict = {}
    for _ in range(TRIALS):
        ref_p, cur_p = _numeric(draw(rng, n_ref), draw(rng, n_cur))
        alarms += column_drift(
            "x", ref_p, cur_p, method=method, alpha=ALPHA, noise_cache=cache
        ).drifted
    return alarms


def _binomial_band(alpha: float) -> tuple[int, int]:
    lo, hi = stats.binom.ppf([0.0005, 0.9995], TRIALS, alpha)
    return int(lo), int(hi)


@pytest.mark.parametrize(
    "method",
    # Wasserstein's noise is simulated per trial: about ten times the others' cost
    [pytest.param(m, marks=pytest.mark.slow) if m == "wasserstein" else m for m in NUMERIC_METHODS],
)
def test_false_alarm_rate_is_what_was_asked_for(method: str) -> None:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(0, 1, n)

    alarms = _false_alarms(method, draw, 4000, 1000)
    lo, hi = _binomial_band(ALPHA)
    assert lo <= alarms <= hi, (
        f"{method}: {alarms} alarms in {TRIALS}, expected about {ALPHA * TRIALS:.0f}"
    )


def test_categorical_false_alarm_rate() -> None:
    rng = np.random.default_rng(1)
    cats, p = np.array(list("abcdefg")), np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.04, 0.01])
    alarms = 0
    for _ in range(TRIALS):
        ref, cur = pa.array(rng.choice(cats, 3000, p=p)), pa.array(rng.choice(cats, 800, p=p))
        frozen = top_categories(ref, 50)
        r, c = CategoricalProfile.build(ref, frozen), CategoricalProfile.build(cur, frozen)
        alarms += column_drift("c", r, c, alpha=ALPHA).drifted
    lo, hi = _binomial_band(ALPHA)
    assert lo <= alarms <= hi


def test_p_value_decisions_flag_everything_on_large_data_calibrated_does_not_on_chunky_data() -> (
    None
):
    """The reference drifts a little day by day; a new day of the same process is no drift."""
    rng = np.random.default_rng(5)
    day_means = rng.normal(0, 0.05, 31)
    days = [rng.normal(m, 1, 20_000) for m in day_means]
    ref, chunks = np.concatenate(days[:30]), days[:30]
    edges = quantile_edges(np.sort(ref), 100)
    ref_p = NumericProfile.build(ref, edges)
    chunk_p = [NumericProfile.build(d, edges) for d in chunks]
    cur_p = NumericProfile.build(days[30], edges)
    flagged_iid = flagged_chunky = 0
    for trial, m in enumerate(rng.normal(0, 0.05, 20)):
        cur_p = NumericProfile.build(rng.normal(m, 1, 20_000), edges)
        flagged_iid += column_drift("x", ref_p, cur_p, alpha=0.01, seed=trial).drifted
        flagged_chunky += column_drift(
            "x", ref_p, cur_p, alpha=0.01, chunks=chunk_p, seed=trial
        ).drifted
    assert flagged_iid >= 10  # i.i.d. calibration (like any p-value) sees the day-to-day wobble
    assert flagged_chunky <= 2  # the reference's own variation between days is not an alarm
    # a shift well beyond the day-to-day variation is still found
    shifted = NumericProfile.build(rng.normal(0.3, 1, 20_000), edges)
    assert column_drift("x", ref_p, shifted, alpha=0.01, chunks=chunk_p).drifted


@pytest.mark.parametrize("method", NUMERIC_METHODS)
def test_detects_a_real_shift(method: str) -> None:
    rng = np.random.default_rng(2)
    ref_p, cur_p = _numeric(rng.normal(0, 1, 20_000), rng.normal(0.2, 1, 5_000))
    result = column_drift("x", ref_p, cur_p, method=method)
    assert result.drifted and result.statistic > result.threshold


def test_threshold_shrinks_with_sample_size() -> None:
    ref = np.full(20, 500)
    t_small = null_threshold(distances.jensenshannon, ref, 500, alpha=0.01, power=2).threshold
    t_large = null_threshold(distances.jensenshannon, ref, 50_000, alpha=0.01, power=2).threshold
    assert t_large < t_small / 2


def test_gamma_tail_for_small_alpha_is_close_to_the_empirical_one() -> None:
    ref = np.full(20, 5000)
    big = null_threshold(distances.chisquare, ref, 2000, alpha=0.001, power=1, replicates=40_000)
    small = null_threshold(distances.chisquare, ref, 2000, alpha=0.001, power=1, replicates=2000)
    assert big.tail == "empirical" and small.tail == "gamma"
    assert small.threshold == pytest.approx(big.threshold, rel=0.1)
    # and both agree with the χ² law the statistic follows under no drift
    assert big.threshold == pytest.approx(stats.chi2.isf(0.001, 19), rel=0.1)


def test_empty_and_constant_columns_give_results_with_reasons() -> None:
    edges = quantile_edges(np.array([3.0] * 100), 10)
    ref = NumericProfile.build(np.array([3.0] * 100), edges)
    same = column_drift("x", ref, NumericProfile.build(np.array([3.0] * 50), edges))
    assert not same.drifted and same.statistic == 0.0
    moved = column_drift("x", ref, NumericProfile.build(np.array([3.0] * 40 + [4.0] * 10), edges))
    assert moved.drifted
    empty = column_drift("x", ref, NumericProfile.build(np.array([]), edges))
    assert not empty.drifted and empty.statistic is None and "no values" in (empty.note or "")


def test_p_value_and_threshold_modes() -> None:
    rng = np.random.default_rng(4)
    ref_p, cur_p = _numeric(rng.normal(0, 1, 5000), rng.normal(0.3, 1, 2000))
    pv = column_drift("x", ref_p, cur_p, method="ks", decision="p_value")
    assert pv.drifted and pv.p_value is not None and pv.p_value < 0.05 and pv.threshold == 0.05
    fixed = column_drift("x", ref_p, cur_p, method="psi", decision="threshold", threshold=10.0)
    assert not fixed.drifted and fixed.threshold == 10.0
    with pytest.raises(ValueError, match="no p-value"):
        column_drift("x", ref_p, cur_p, method="psi", decision="p_value")
    with pytest.raises(ValueError, match="does not apply"):
        column_drift("x", ref_p, cur_p, method="nope")


def test_the_anderson_darling_companion_finds_scale_shifts_that_ks_misses_on_small_windows() -> (
    None
):
    rng = np.random.default_rng(3)
    ref = rng.normal(size=30_000)
    found, ks_alone, cache = 0, 0, {}
    for _ in range(40):
        ref_p, cur_p = _numeric(ref, rng.normal(0, 1.15, 1_000))  # scale only: x 1.15
        d = column_drift("x", ref_p, cur_p, alpha=0.01, noise_cache=cache)
        assert d.companion is not None and d.companion["method"] == "anderson"
        found += d.drifted
        ks_alone += (
            d.statistic
            > null_threshold(
                distances.ks, ref_p.counts, 1_000, alpha=0.01, power=2, open_cells=(0, 101)
            ).threshold
        )
    assert found >= 33, f"found {found} of 40 scale shifts"
    assert ks_alone <= 25, f"KS alone found {ks_alone} of 40"


def test_the_cell_deviance_companion_finds_a_stretched_tail_that_ks_and_anderson_miss() -> None:
    """The benchmark's tail shift on a normal column at 1,000 rows: the values above the 90th
    percentile moved out twice as far from it. Little mass moves, but it piles into the
    outermost cells, which the largest cell deviance sees and the two sums dilute."""
    rng = np.random.default_rng(5)
    ref = rng.normal(size=40_000)
    q90 = float(np.quantile(ref, 0.9))
    found, by_sums, cache = 0, 0, {}
    for _ in range(40):
        x = rng.normal(size=1_000)
        ref_p, cur_p = _numeric(ref, np.where(x > q90, q90 + 2 * (x - q90), x))
        d = column_drift("x", ref_p, cur_p, alpha=0.01, noise_cache=cache)
        assert d.companion is not None
        assert [c["method"] for c in d.companion["all"]] == ["anderson", "cell_deviance"]
        found += d.drifted
        by_sums += d.statistic > d.threshold or d.companion["statistic"] > d.companion["threshold"]
    assert found >= 24, f"found {found} of 40 tail shifts"
    assert by_sums <= 10, f"KS and Anderson-Darling found {by_sums} of 40"


def test_large_windows_are_decided_by_ks_alone() -> None:
    rng = np.random.default_rng(4)
    ref_p, cur_p = _numeric(rng.normal(size=200_000), rng.normal(size=100_000))
    d = column_drift("x", ref_p, cur_p, alpha=0.01)
    alone = null_threshold(
        distances.ks, ref_p.counts, 100_000, alpha=0.01, power=2, open_cells=(0, 101)
    )
    assert d.companion is None and d.threshold == alone.threshold


def test_either_quantiles_keep_the_joint_false_alarm_rate() -> None:
    rng = np.random.default_rng(0)
    a = rng.chisquare(3, 2000)
    b = 0.5 * a + rng.chisquare(2, 2000)  # dependent, as two statistics of one draw are
    (ta, tb), level, tail = either_quantiles([a, b], 0.01)
    assert tail == "empirical" and 0.005 <= level <= 0.01
    assert ((a > ta) | (b > tb)).mean() <= 0.01
    assert ta >= np.quantile(a, 0.99, method="higher")  # each is stricter than alone
    _, thin_level, thin_tail = either_quantiles([a, b], 0.001)
    assert (thin_level, thin_tail) == (0.0005, "gamma")
