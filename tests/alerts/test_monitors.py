"""Monitor specs: every kind parses to what it says, and every mistake names monitor and field;
the settings file's ``monitors`` and ``notifiers`` are real, validated settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerts.config import alert_config
from watchkeeper.alerts.monitors import Monitor, parse_duration, parse_monitor, parse_monitors
from watchkeeper.alerts.verdicts import change_threshold, threshold_verdict
from watchkeeper.errors import InputError
from watchkeeper.settings import load_settings

ISSUE_EXAMPLE = """
monitors:
  - name: accuracy-floor
    model: churn
    metric: accuracy
    condition: "<= 0.85"
    severity: critical
    notify: [ops]
notifiers:
  ops: {type: webhook, url: "http://127.0.0.1:9000/hook"}
"""


def base(**extra: Any) -> dict[str, Any]:
    return {"name": "m1", "model": "churn", "metric": "accuracy", **extra}


def test_the_issue_example_loads_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "wk.yaml"
    path.write_text(ISSUE_EXAMPLE)
    settings = load_settings(path, environ={})
    [m] = alert_config(settings).monitors
    assert isinstance(m, Monitor)
    assert (m.name, m.model, m.metric, m.kind, m.severity) == (
        "accuracy-floor",
        "churn",
        "accuracy",
        "condition",
        "critical",
    )
    assert m.params == {"op": "<=", "threshold": 0.85}
    assert m.notify == ("ops",) and m.source == "config"
    assert set(settings.notifiers) == {"ops"}


@pytest.mark.parametrize(
    ("condition", "op", "threshold"),
    [("<= 0.85", "<=", 0.85), (">0.2", ">", 0.2), ("< -1e-3", "<", -0.001), ("!= 0", "!=", 0.0)],
)
def test_conditions(condition: str, op: str, threshold: float) -> None:
    m = parse_monitor(base(condition=condition))
    assert m.params == {"op": op, "threshold": threshold}


@pytest.mark.parametrize(
    ("value", "threshold", "breach", "healthy"),
    [
        (0.84, 0.85, True, False),
        (0.85, 0.85, True, False),  # <= includes the threshold
        (0.86, 0.85, False, False),  # inside the hysteresis margin: neither
        (0.871, 0.85, False, True),
    ],
)
def test_threshold_verdict_with_hysteresis(
    value: float, threshold: float, breach: bool, healthy: bool
) -> None:
    assert threshold_verdict("<=", threshold, value, 0.02) == (breach, healthy)


def test_change_kinds() -> None:
    relative = parse_monitor(base(change={"drops_by": "5%"}))
    assert relative.params == {
        "direction": "drops",
        "amount": pytest.approx(0.05),
        "relative": True,
        "reference": None,
    }
    assert change_threshold(relative.params, 0.9) == ("<", pytest.approx(0.855))
    absolute = parse_monitor(base(metric="latency_p95", change={"rises_by": 0.2, "reference": 1}))
    assert absolute.params["reference"] == 1.0
    assert change_threshold(absolute.params, 1.0) == (">", pytest.approx(1.2))


def test_band_anomaly_and_detector_defaults() -> None:
    band = parse_monitor(base(band={"k": 2.5, "side": "below"}))
    assert band.params == {"k": 2.5, "baseline_windows": 24, "side": "below"}
    anomaly = parse_monitor(base(metric="volume", anomaly={}))
    assert anomaly.metric == "count"  # the alias
    assert anomaly.params == {"k": 4.0, "side": "both", "min_history": 12, "utc_offset": 0.0}
    detector = parse_monitor(base(metric="error", detector={"type": "cusum", "threshold": 6.0}))
    assert detector.params == {"type": "cusum", "options": {"threshold": 6.0}}
    assert detector.sample_metric == "labels"


def test_defaults_and_lifecycle_fields() -> None:
    m = parse_monitor(base(condition="<= 0.8"))
    assert (m.min_samples, m.for_windows, m.resolve_windows, m.cooldown, m.hysteresis) == (
        30,
        1,
        1,
        0.0,
        0.0,
    )
    m = parse_monitor(
        base(condition="<= 0.8", for_windows=3, resolve_windows=2, cooldown="1h", min_samples=0)
    )
    assert (m.for_windows, m.resolve_windows, m.cooldown, m.min_samples) == (3, 2, 3600.0, 0)


def test_actions_parse_and_commands_only_from_the_settings_file() -> None:
    spec = base(
        condition="<= 0.8",
        actions=[
            {"type": "retrain", "command": "python train.py {dataset}", "timeout": "10m"},
            {"type": "webhook", "url": "http://127.0.0.1:1/retrain"},
        ],
    )
    m = parse_monitor(spec, allow_commands=True)
    retrain, hook = m.actions
    assert retrain.command == ("python", "train.py", "{dataset}") and retrain.timeout == 600
    assert hook.url == "http://127.0.0.1:1/retrain" and hook.timeout == 30
    with pytest.raises(InputError, match=r"monitor 'm1': actions\[0\]: retrain commands"):
        parse_monitor(spec)


def test_spec_round_trips_and_hash_ignores_routing() -> None:
    m = parse_monitor(base(condition="<= 0.8", severity="critical", notify=["a"]))
    again = parse_monitor(json.loads(json.dumps(m.to_dict())))
    assert again == m
    other = parse_monitor(base(condition="<= 0.8", severity="warning"))
    assert other.judging_hash() == m.judging_hash()
    assert parse_monitor(base(condition="<= 0.7")).judging_hash() != m.judging_hash()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"model": "churn", "metric": "accuracy", "condition": "<= 1"}, r"monitor: name"),
        (
            base(condition="<= 0.8", colour="red"),
            r"monitor 'm1': fields: unknown field\(s\) \['colour'\]",
        ),
        (
            base(metric="acuracy", condition="<= 0.8"),
            r"monitor 'm1': metric: unknown metric 'acuracy'",
        ),
        (base(), r"monitor 'm1': kind: give exactly one of condition"),
        (base(condition="<= 0.8", band={}), r"monitor 'm1': kind: give exactly one"),
        (base(condition="below 0.8"), r"monitor 'm1': condition: expected an operator"),
        (base(change={"drops_by": "five"}), r"monitor 'm1': change.drops_by"),
        (base(change={"drops_by": "5%", "rises_by": "1%"}), r"change: give exactly one"),
        (base(band={"k": -1}), r"monitor 'm1': band.k: must be positive"),
        (base(band={"side": "up"}), r"monitor 'm1': band.side: use one of"),
        (base(anomaly={"sigma": 2}), r"monitor 'm1': anomaly: unknown option"),
        (base(detector={"type": "ewma"}), r"monitor 'm1': detector.type: use one of"),
        (base(metric="error", condition="> 0.1"), r"monitor 'm1': metric: the error stream"),
        (base(condition="<= 0.8", severity="high"), r"monitor 'm1': severity"),
        (
            base(condition="<= 0.8", for_windows=0),
            r"monitor 'm1': for_windows: expected an integer >= 1",
        ),
        (base(condition="<= 0.8", min_samples=-1), r"monitor 'm1': min_samples"),
        (base(condition="<= 0.8", cooldown="soon"), r"monitor 'm1': cooldown"),
        (
            base(condition="<= 0.8", feature="age"),
            r"monitor 'm1': feature: metric 'accuracy' is not per feature",
        ),
        (
            base(metric="drift_statistic", detector={"type": "adwin"}),
            r"monitor 'm1': feature: a detector",
        ),
        (
            base(condition="<= 0.8", notify=["pager"]),
            r"monitor 'm1': notify: unknown notifier\(s\) \['pager'\]",
        ),
        (base(condition="<= 0.8", actions=[{"type": "email"}]), r"monitor 'm1': actions\[0\].type"),
        (
            base(condition="<= 0.8", actions=[{"type": "webhook", "url": "ftp://x"}]),
            r"actions\[0\].url",
        ),
        (base(condition="<= 0.8", hysteresis=0.1, band=None), None),
        (base(band={}, hysteresis=0.1), r"monitor 'm1': hysteresis: applies to condition"),
    ],
)
def test_mistakes_name_the_monitor_and_field(spec: dict[str, Any], message: str | None) -> None:
    if message is None:
        parse_monitor(spec, notifiers=[])
        return
    with pytest.raises(InputError, match=message):
        parse_monitor(spec, notifiers=["ops"])


def test_detector_arguments_are_checked_by_the_detector() -> None:
    with pytest.raises(InputError, match=r"monitor 'm1': detector: .*p0"):
        parse_monitor(base(metric="error", detector={"type": "cusum", "p0": 2.0}))
    with pytest.raises(InputError, match=r"monitor 'm1': detector: .*unexpected keyword"):
        parse_monitor(base(metric="error", detector={"type": "adwin", "speed": 1}))


def test_duplicate_names_and_notifier_names_in_settings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the name 'm1' is used twice"):
        parse_monitors([base(condition="<= 1"), base(condition="<= 2")])
    path = tmp_path / "wk.yaml"
    path.write_text(ISSUE_EXAMPLE.replace("notify: [ops]", "notify: [pager]"))
    with pytest.raises(InputError, match=r"monitor 'accuracy-floor': notify: unknown notifier"):
        alert_config(load_settings(path, environ={}))
    path.write_text(ISSUE_EXAMPLE.replace("type: webhook", "type: sms"))
    with pytest.raises(InputError, match=r"notifier 'ops': field 'type'"):
        alert_config(load_settings(path, environ={}))


def test_monitors_and_notifiers_from_the_environment_as_json() -> None:
    env = {
        "WATCHKEEPER_NOTIFIERS": json.dumps({"audit": {"type": "log"}}),
        "WATCHKEEPER_MONITORS": json.dumps([base(condition="<= 0.8", notify=["audit"])]),
    }
    config = alert_config(load_settings(environ=env))
    assert [m.name for m in config.monitors] == ["m1"] and list(config.notifiers) == ["audit"]
    with pytest.raises(InputError, match="setting monitors: expected JSON"):
        load_settings(environ={"WATCHKEEPER_MONITORS": "[{"})
    with pytest.raises(InputError, match="monitors: expected a list"):
        load_settings(environ={"WATCHKEEPER_MONITORS": "{}"})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), ("45s", 45.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("250ms", 0.25)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["ten minutes", "-5", True, "5w"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(InputError, match="duration"):
        parse_duration(value)


def test_the_settings_examples_in_docs_alerts_md_load(tmp_path: Path) -> None:
    import re

    text = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S) if "monitors:" in b
    ]
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"example-{i}.yaml"
        path.write_text(block)
        monitors = alert_config(load_settings(path, environ={})).monitors
        assert monitors and all(isinstance(m, Monitor) for m in monitors)


def test_every_registered_detector_is_a_monitor_kind_on_both_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry is the one place: a detector entered there is accepted by monitors and
    built for each stream, with no other change."""
    from watchkeeper.stats import detectors

    for name, kind in detectors.DETECTORS.items():
        on_errors = parse_monitor(base(metric="error", detector={"type": name}))
        on_metric = parse_monitor(base(detector={"type": name}))
        assert on_errors.params == on_metric.params == {"type": name, "options": {}}
        assert type(kind.build({}, binary=True)) is kind.binary
        assert type(kind.build({}, binary=False)) is kind.real
    extra = detectors.DetectorKind("ph", detectors.PageHinkley, detectors.PageHinkley)
    monkeypatch.setitem(detectors.DETECTORS, "ph", extra)
    assert parse_monitor(base(detector={"type": "ph", "delta": 0.01})).params["type"] == "ph"
    with pytest.raises(InputError, match=r"monitor 'm1': detector: ph: .*unexpected keyword"):
        parse_monitor(base(detector={"type": "ph", "speed": 1}))


def test_a_new_kind_is_one_class_and_its_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Monitors parse it and the series judge runs it, with no other change."""
    from watchkeeper.alerts import kinds
    from watchkeeper.alerts.verdicts import Verdict, judge_series

    class Outside(kinds.Kind):
        name = "outside"

        def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
            if not isinstance(value, list) or len(value) != 2:
                raise kinds.fail(name, "outside", f"expected [low, high], got {value!r}")
            return {"low": float(value[0]), "high": float(value[1])}

        def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: kinds.Series) -> None:
            v.breach = not p["low"] <= value <= p["high"]
            v.healthy = not v.breach

    monkeypatch.setitem(kinds.KINDS, "outside", Outside())
    m = parse_monitor(base(outside=[0.8, 1.0], min_samples=10))
    assert (m.kind, m.params) == ("outside", {"low": 0.8, "high": 1.0})
    with pytest.raises(InputError, match=r"monitor 'm1': outside: expected \[low, high\]"):
        parse_monitor(base(outside=0.8))
    with pytest.raises(InputError, match="hysteresis: applies to condition and change"):
        parse_monitor(base(outside=[0.8, 1.0], hysteresis=0.1))
    values = {0: 0.9, 3600: 0.7, 7200: 0.95}
    verdicts = judge_series(m, "", values, dict.fromkeys(values, 50.0), [0, 3600, 7200])
    assert [v.breach for v in verdicts] == [False, True, False]
