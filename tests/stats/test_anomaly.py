"""Metric anomalies: the reference band against numpy, the seasonal scorer's median and MAD
against numpy/scipy, robustness to outliers in the history, and the season it picks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from scipy import stats

from watchkeeper.errors import InputError
from watchkeeper.stats.anomaly import band, robust_scale, seasonal_anomaly, to_epoch_seconds

START = np.datetime64("2024-03-04T00:00")  # a Monday


def _hourly(days: int) -> tuple[np.ndarray, np.ndarray]:
    hours = np.arange(24 * days)
    return START + hours.astype("timedelta64[h]"), hours


def _daily_history(days: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ts, hours = _hourly(days)
    rng = np.random.default_rng(seed)
    values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 2, hours.size)
    values[rng.choice(hours.size, 8, replace=False)] = [900, -500, 400, 3000, -80, 700, 0, 5e4]
    return ts, values


# ----------------------------------------------------------------------------- band


def test_band_is_mean_plus_minus_k_sample_std() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(3.0, 0.4, 50)
    low, high = band(np.r_[ref, np.nan], k=2.5)  # undefined windows are left out
    assert low == pytest.approx(ref.mean() - 2.5 * ref.std(ddof=1))
    assert high == pytest.approx(ref.mean() + 2.5 * ref.std(ddof=1))


@pytest.mark.parametrize(
    ("values", "k", "message"),
    [([1.0], 3.0, "at least 2 finite"), ([1.0, 2.0], 0.0, "k must be"), ([[1.0, 2.0]], 3.0, "1-D")],
)
def test_band_rejects_bad_input(values: object, k: float, message: str) -> None:
    with pytest.raises(InputError, match=message):
        band(values, k=k)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- oracles


def test_robust_scale_is_scipys_normal_mad() -> None:
    x = np.random.default_rng(2).standard_t(3, 501)
    assert robust_scale(x) == pytest.approx(stats.median_abs_deviation(x, scale="normal"))


@pytest.mark.parametrize("hours", [24, 23])  # even and odd counts: two median formulas
def test_without_a_season_the_expected_value_is_the_median_and_the_scale_the_mad(
    hours: int,
) -> None:
    ts, _ = _hourly(1)  # one day: no hour of day is seen twice, so no season can be fitted
    ts = ts[:hours]
    values = np.random.default_rng(3).lognormal(1.0, 0.5, ts.size)
    r = seasonal_anomaly(ts, values, START + np.timedelta64(30, "h"), 2.0, k=3.0)
    n = values.size
    loo_errors = [values[i] - np.median(np.delete(values, i)) for i in range(n)]
    spread = stats.median_abs_deviation(loo_errors, scale="normal")
    assert r.season == "none: all history" and r.n_history == n
    assert r.expected == pytest.approx(np.median(values))
    assert r.spread == pytest.approx(spread)
    assert (r.low, r.high) == (
        pytest.approx(r.expected - 3 * spread),
        pytest.approx(r.expected + 3 * spread),
    )
    assert r.score == pytest.approx((2.0 - np.median(values)) / spread)


def test_the_daily_expected_value_is_the_median_of_the_same_hour() -> None:
    ts, values = _daily_history()
    t = START + np.timedelta64(14 * 24 + 7, "h")  # 07:00 on the next day
    r = seasonal_anomaly(ts, values, t, 100.0)
    same_hour = values[(np.arange(values.size) % 24) == 7]
    assert r.season == "daily: hour 07" and r.n_history == same_hour.size == 14
    assert r.expected == pytest.approx(np.median(same_hour))
    errors = [
        v - np.median(np.delete(values[np.arange(values.size) % 24 == h], i))
        for h in range(24)
        for i, v in enumerate(values[np.arange(values.size) % 24 == h])
    ]
    assert r.spread == pytest.approx(stats.median_abs_deviation(errors, scale="normal"))


# ----------------------------------------------------------------------------- behaviour


def test_normal_next_day_points_pass_and_anomalies_are_flagged() -> None:
    ts, values = _daily_history()
    rng = np.random.default_rng(4)
    flagged = []
    for h in range(24):
        t = START + np.timedelta64(14 * 24 + h, "h")
        x = 100 + 20 * math.sin(2 * math.pi * h / 24) + rng.normal(0, 2)
        r = seasonal_anomaly(ts, values, t, x)
        assert abs(r.expected - (100 + 20 * math.sin(2 * math.pi * h / 24))) < 3.0
        assert 1.5 < r.spread < 3.5  # noise sd 2; the outliers did not blow the scale up
        flagged.append(r.is_anomaly)
    assert not any(flagged)
    noon_next_day = START + np.timedelta64(14 * 24 + 6, "h")  # the daily peak, ~120
    assert seasonal_anomaly(ts, values, noon_next_day, 140.0).is_anomaly
    # 100 is the metric's overall mean, so a plain band passes it; at the peak hour it is not
    assert seasonal_anomaly(ts, values, noon_next_day, 100.0).is_anomaly
    low, high = band(values[np.abs(values - 100) < 50])
    assert low < 100.0 < high


def test_outliers_in_the_history_barely_move_the_expected_value() -> None:
    ts, values = _daily_history()
    t = START + np.timedelta64(15 * 24 + 18, "h")
    clean = seasonal_anomaly(ts, values, t, 80.0)
    dirty_values = values.copy()
    dirty_values[18::24][:3] = 1e6  # three of the fourteen 18:00 points become absurd
    dirty = seasonal_anomaly(ts, dirty_values, t, 80.0)
    assert abs(dirty.expected - clean.expected) < 2 * clean.spread
    assert dirty.spread < 1.5 * clean.spread
    assert not dirty.is_anomaly


def test_a_weekly_pattern_is_used_only_when_it_predicts_better() -> None:
    ts, hours = _hourly(35)  # five weeks
    rng = np.random.default_rng(5)
    daily = 50 + 10 * np.sin(2 * np.pi * hours / 24)
    weekend = (hours // 24) % 7 >= 5
    noise = rng.normal(0, 1, hours.size)
    t = START + np.timedelta64(35 * 24 + 5 * 24 + 12, "h")  # a Saturday, 12:00
    with_weekend = seasonal_anomaly(ts, daily - 25 * weekend + noise, t, 25.0)
    assert with_weekend.season == "weekly: Sat hour 12" and with_weekend.n_history == 5
    assert not with_weekend.is_anomaly
    assert with_weekend.expected == pytest.approx(25.0, abs=2.0)
    plain = seasonal_anomaly(ts, daily + noise, t, 50.0)
    assert plain.season == "daily: hour 12" and plain.n_history == 35


def test_utc_offset_moves_the_hours_to_local_time() -> None:
    ts, values = _daily_history()
    t = START + np.timedelta64(14 * 24 + 7, "h")
    shifted = seasonal_anomaly(ts, values, t, 100.0, utc_offset=2.0)
    assert shifted.season == "daily: hour 09"
    assert shifted.expected == pytest.approx(seasonal_anomaly(ts, values, t, 100.0).expected)


def test_every_timestamp_form_gives_the_same_answer() -> None:
    ts, values = _daily_history(days=4)
    t = START + np.timedelta64(5 * 24 + 3, "h")
    expected = seasonal_anomaly(ts, values, t, 100.0)
    seconds = to_epoch_seconds(ts)
    naive = [datetime(2024, 3, 4) + timedelta(hours=int(h)) for h in range(ts.size)]
    aware = [datetime(2024, 3, 4, tzinfo=UTC) + timedelta(hours=int(h)) for h in range(ts.size)]
    plus_two = [a.astimezone(timezone(timedelta(hours=2))) for a in aware]
    strings = [str(x) for x in ts]
    for history, when in (
        (seconds, float(to_epoch_seconds(t)[0])),
        (naive, datetime(2024, 3, 9, 3)),
        (plus_two, datetime(2024, 3, 9, 5, tzinfo=timezone(timedelta(hours=2)))),
        (strings, "2024-03-09T03:00"),
    ):
        assert seasonal_anomaly(history, values, when, 100.0) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": [1.0, 2.0]}, "same length"),
        ({"x": float("nan")}, "x must be finite"),
        ({"x": "high"}, "x must be a number"),
        ({"k": -1.0}, "k must be"),
        ({"min_points": 1}, "min_points"),
        (
            {"timestamps": ["yesterday", "today", "now"], "values": [1.0, 2.0, 3.0]},
            r"timestamps\[0\]",
        ),
        (
            {
                "timestamps": np.array(["NaT", "2024-01-01", "2024-01-02"], dtype="datetime64[s]"),
                "values": [1.0, 2.0, 3.0],
            },
            "NaT",
        ),
        ({"values": [1.0, np.nan, np.nan]}, "at least 3 finite"),
    ],
)
def test_bad_input_raises_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "timestamps": START + np.arange(3).astype("timedelta64[h]"),
        "values": [1.0, 2.0, 3.0],
        "t": START,
        "x": 1.0,
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        seasonal_anomaly(**args)  # type: ignore[arg-type]
