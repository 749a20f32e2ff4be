"""What ``watchkeeper demo`` shows: the loop as it happens, then its story, read from the API.

:func:`watch` follows the model's history while the traffic runs and prints each step as it
is recorded, with the phase and live figures below; it returns once a window answered by the
promoted version has all its labels (``"recovered"``), or names the step that did not happen.
:class:`Story` reads the steps back from ``/v1/models/churn/history``, ``/v1/alerts``,
``/v1/retrain-jobs``, ``/verdicts`` and ``/metrics?metric=accuracy`` — the figures printed
are the service's — and :func:`print_story` prints them with their times. While it watches,
:func:`track` notes each window's ``estimated_accuracy`` the first time it is there, with the
labels its window had then: the story tells the estimate of the changed window, made before
its labels came, next to the realized accuracy that followed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watchkeeper.demo import ESTIMATED_MONITOR, MODEL, DemoPlan, Traffic, get

if TYPE_CHECKING:
    from watchkeeper.settings import Settings

# the steps of the loop, in order: (history kind, what the live display says next)
STEPS = (
    ("alert_firing", "alert fired; the retraining job exports its window"),
    ("shadow_started", "the retrained version scores every request in shadow"),
    ("verdict", "verdict made"),
    ("promoted", "promoted; waiting for a full window of the new champion with its labels"),
)


def accuracy(base: str, version: str, metric: str = "accuracy") -> list[dict[str, Any]]:
    """The version's accuracy (or ``metric``) points (oldest first) that have a value."""
    url = f"{base}/v1/models/{MODEL}/metrics?metric={metric}&version={version}"
    return [p for p in get(url)["points"] if p["value"] is not None]


def track(base: str, estimates: dict[int, dict[str, Any]]) -> None:
    """Note v1's windows' estimated accuracy the first time each is there, with its interval
    and the labels its window had then (the realized accuracy's ``n``, 0 without a value)."""
    new = [
        p for p in accuracy(base, "v1", "estimated_accuracy") if p["window_start"] not in estimates
    ]
    if not new:
        return
    realized = {p["window_start"]: p for p in accuracy(base, "v1")}
    for p in new:
        d, r = p.get("detail") or {}, realized.get(p["window_start"])
        estimates[p["window_start"]] = {
            "window_start": p["window_start"],
            "window_seconds": p["window_seconds"],
            "value": p["value"],
            "low": d.get("low"),
            "high": d.get("high"),
            "reference": d.get("reference_value"),
            "labelled_then": int((r.get("detail") or {}).get("n") or 0) if r else 0,
        }


def drift_impact_after(base: str, change_at: float) -> tuple[float, list[dict[str, Any]]] | None:
    """The first window of v1 from ``change_at`` on whose drifted features are ranked by drift
    impact (the served artifact's attribution shares): its start and the ranking."""
    points = get(f"{base}/v1/models/{MODEL}/metrics?metric=drifted_share&version=v1")["points"]
    for p in sorted(points, key=lambda p: p["window_start"]):
        rows = (p.get("detail") or {}).get("drift_impact")
        if p["window_start"] >= change_at and rows:
            return float(p["window_start"]), list(rows)
    return None


def _on_estimate(event: dict[str, Any]) -> bool:
    """An event of the monitor of the estimated accuracy (not a step of the loop)."""
    return bool((event.get("detail") or {}).get("monitor") == ESTIMATED_MONITOR)


def oldest_first(base: str) -> list[dict[str, Any]]:
    return list(reversed(get(f"{base}/v1/models/{MODEL}/history?limit=1000")["events"]))


def watch(
    base: str,
    plan: DemoPlan,
    traffic: Traffic,
    console: Any,
    deadline: float,
    estimates: dict[int, dict[str, Any]] | None = None,
) -> str:
    """Follow the loop until it has recovered (``"recovered"``) or cannot go on (the reason);
    v1's estimates go into ``estimates`` as they come (:func:`track`)."""
    estimates = {} if estimates is None else estimates
    seen: set[tuple[str, float]] = set()
    w = plan.window_seconds
    with console.status("") as status:
        while True:
            now = time.time()
            events = oldest_first(base)
            for e in events:
                if (e["kind"], e["at"]) not in seen and e["kind"] != "version_registered":
                    seen.add((e["kind"], e["at"]))
                    what = e["kind"].replace("_", " ")
                    console.print(f"  {_clock(e['at'])}  {what:<16} {e['summary']}")
            track(base, estimates)
            kinds = {e["kind"]: e for e in events if not _on_estimate(e)}
            for kind, reason in (
                ("action_failed", "the retraining job failed"),
                ("action_timeout", "the retraining job timed out"),
                ("retired", "the retrained version was retired by its verdict"),
            ):
                if kind in kinds:
                    return f"{reason}: {kinds[kind]['summary']}"
            if traffic.failed and not traffic.sent:
                return f"the requests fail: {traffic.last_error}"
            promoted = kinds.get("promoted")
            if promoted is not None:
                first_full = (int(promoted["at"]) // w + 1) * w
                points = accuracy(base, promoted["version"])
                if any(p["window_start"] >= first_full for p in points) and (
                    now >= first_full + 2 * w + 2
                ):
                    return "recovered"
            if now > deadline:
                missing = next((k for k, _ in STEPS if k not in kinds), "recovery")
                return f"gave up after {plan.minutes:g} minutes: no {missing.replace('_', ' ')}"
            status.update(_phase(plan, traffic, kinds, now) + _figures(base, traffic))
            time.sleep(1.0)


def _phase(plan: DemoPlan, traffic: Traffic, kinds: dict[str, Any], now: float) -> str:
    done = [k for k, _ in STEPS if k in kinds]
    if done:
        return dict(STEPS)[done[-1]]
    if not traffic.changed:
        return f"the old world; it changes in {traffic.change_at - now:.0f} s"
    return (
        f"the world has changed; labels arrive {plan.label_delay:g} windows late, the "
        "estimated accuracy when each window closes"
    )


def _figures(base: str, traffic: Traffic) -> str:
    champion = get(f"{base}/v1/models/{MODEL}").get("champion") or "v1"
    points = accuracy(base, champion)
    last = f"{points[-1]['value']:.3f}" if points else "—"
    return (
        f" · champion {champion}, accuracy of its last window {last}"
        f" · {traffic.sent:,} requests, {traffic.labelled:,} labelled"
    )


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


@dataclass
class Story:
    """The steps of one demo run, each ``(seconds since the start, kind, text)``, and the
    accuracy in the last window before the change, in the alert's window and in the first full
    window after the promotion."""

    outcome: str
    steps: list[tuple[float, str, str]] = field(default_factory=list)
    accuracy_before: float | None = None
    accuracy_alert: float | None = None
    accuracy_after: float | None = None
    windows: list[tuple[str, str, float]] = field(default_factory=list)
    estimate: dict[str, Any] | None = None  # the changed window's, as first seen (track)
    estimated_windows: list[tuple[str, float]] = field(default_factory=list)  # v1's
    # the first changed window's drifted features by drift x attribution share (explain.md)
    drift_impact: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        base: str,
        started: float,
        change_at: float,
        baseline: float,
        threshold: float,
        outcome: str,
        estimates: dict[int, dict[str, Any]] | None = None,
    ) -> Story:
        story = cls(outcome)
        estimates = estimates or {}
        events = oldest_first(base)

        def step(at: float, kind: str, text: str) -> None:
            story.steps.append((round(at - started, 1), kind, text))

        old_world = [
            p for p in accuracy(base, "v1") if p["window_start"] + p["window_seconds"] <= change_at
        ]
        if old_world:  # the last window before the change (the first may hold one batch)
            story.accuracy_before = max(old_world, key=lambda p: p["window_start"])["value"]
        step(started, "version_registered", f"v1 serving: trained accuracy {baseline:.3f}")
        step(
            change_at,
            "world_changed",
            "the world changes: input drift, older customers (a covariate shift) and concept drift",
        )
        impact = drift_impact_after(base, change_at)
        if impact is not None:  # why: the drifted features by how much the model relies on them
            start, rows = impact
            story.drift_impact = rows
            step(
                start,
                "drift_impact",
                f"drift impact in the window {_clock(start)}: {rows[0]['message']}"
                + (f"; last: {rows[-1]['message']}" if len(rows) > 1 else ""),
            )
        changed = [e for start, e in sorted(estimates.items()) if start >= change_at]
        if changed:
            story.estimate = dict(changed[0])
            start = changed[0]["window_start"]
            realized = [p for p in accuracy(base, "v1") if p["window_start"] == start]
            if realized:
                story.estimate["realized"] = realized[0]["value"]
        for e in events:
            kind, d = e["kind"], e.get("detail") or {}
            if kind == "alert_firing" and _on_estimate(e):
                alert = get(f"{base}/v1/alerts/{d['alert_id']}")
                fired = next(h for h in alert["history"] if h["state"] == "firing")
                start = fired["window_start"]
                then = estimates.get(start, {}).get("labelled_then")
                labels = "" if then is None else f", when its window had {then} labels"
                step(
                    e["at"],
                    kind,
                    f"alert {alert['id']} fired on the estimate: estimated accuracy "
                    f"{fired['value']:.3f} {alert['condition']} in the window "
                    f"{_clock(start)}–{_clock(start + alert['window_seconds'])} of "
                    f"{alert['version']}{labels}",
                )
            elif kind == "alert_firing":
                alert = get(f"{base}/v1/alerts/{d['alert_id']}")  # now: its latest window
                fired = next(h for h in alert["history"] if h["state"] == "firing")
                start, end = fired["window_start"], fired["window_start"] + alert["window_seconds"]
                story.accuracy_alert = fired["value"]
                step(
                    e["at"],
                    kind,
                    f"alert {alert['id']} fired: accuracy {fired['value']:.3f} < {threshold:.2f}"
                    f" in the window {_clock(start)}–{_clock(end)} of {alert['version']}",
                )
            elif kind == "alert_resolved":
                step(e["at"], kind, f"alert {d['alert_id']} {e['summary']}")
            elif kind == "action_succeeded":
                job = get(f"{base}/v1/retrain-jobs/{d['job_id']}")
                step(
                    e["at"],
                    kind,
                    f"retraining job {job['id']} succeeded: trained on {job['rows']:,} rows of "
                    f"the alert's window in {job['duration']:.1f} s",
                )
            elif kind == "shadow_started":
                step(e["at"], kind, f"{e['version']} in shadow beside {d.get('previous') or 'v1'}")
            elif kind == "verdict":
                step(e["at"], kind, _verdict(base, d))
            elif kind == "promoted":
                step(e["at"], kind, e["summary"])
                after = [
                    p
                    for p in accuracy(base, e["version"])
                    if p["window_start"]
                    >= (int(e["at"]) // p["window_seconds"] + 1) * p["window_seconds"]
                ]
                if after:
                    story.accuracy_after = after[0]["value"]
        for version in dict.fromkeys(
            ["v1", *(e["version"] for e in events if e["kind"] == "shadow_started")]
        ):
            story.windows += [
                (_clock(p["window_start"]), version, p["value"]) for p in accuracy(base, version)
            ]
        story.windows.sort()
        story.estimated_windows = [
            (_clock(p["window_start"]), p["value"])
            for p in accuracy(base, "v1", "estimated_accuracy")
        ]
        return story

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(base: str, detail: dict[str, Any]) -> str:
    verdicts = get(f"{base}/v1/models/{MODEL}/verdicts")["verdicts"]
    v = next((v for v in verdicts if v["id"] == detail.get("verdict_id")), verdicts[0])
    e = v["evidence"]
    ci = e.get("intervals", {})

    def side(name: str) -> str:
        low, high = ci.get(name, [float("nan")] * 2)
        return f"{v[name]} {e[name]:.3f} [{low:.3f}, {high:.3f}]"

    return (
        f"verdict {v['id']}: {e['n']} labelled requests both answered · accuracy "
        f"{side('challenger')} vs {side('champion')} · {e.get('method', 'paired test')} "
        f"p = {e['p_value']:.2g} → {v['decision']}"
    )


def print_story(console: Any, story: dict[str, Any]) -> None:
    console.print()
    console.print("[bold]the loop, step by step[/] (seconds since the start)")
    for at, _kind, text in story["steps"]:
        console.print(f"  {at:6.1f} s  {text}")

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    console.print(
        f"accuracy: {fmt(story['accuracy_before'])} just before the change → "
        f"{fmt(story['accuracy_alert'])} in the alert's window → "
        f"{fmt(story['accuracy_after'])} in the first full window after the promotion"
    )
    console.print("accuracy by window: " + ", ".join(
        f"{clock} {version} {value:.2f}" for clock, version, value in story["windows"]
    ))  # fmt: skip
    console.print("estimated accuracy by window (v1, no labels needed): " + ", ".join(
        f"{clock} {value:.2f}" for clock, value in story["estimated_windows"]
    ))  # fmt: skip
    e = story.get("estimate")
    if e is not None:
        band = "" if e["low"] is None else f" [{e['low']:.3f}, {e['high']:.3f}]"
        realized, below = e.get("realized"), ""
        if realized is not None and e["low"] is not None and realized < e["low"]:
            below = " (below the band: the concept drift, which only labels show)"
        console.print(
            f"before the labels: the window {_clock(e['window_start'])} of the change was "
            f"estimated at {e['value']:.3f}{band} (reference {fmt(e['reference'])}) when it "
            f"closed, with {e['labelled_then']} of its labels; its realized accuracy, once "
            f"they came: {fmt(realized)}{below}"
        )
    ok = story["outcome"] == "recovered"
    console.print(f"[{'green' if ok else 'red'}]{story['outcome']}[/]")


def print_where_to_look(console: Any, base: str, settings: Settings) -> None:
    console.print("[bold]where to look[/]")
    for what, url in (
        (
            "dashboard",
            f"{base}/ui/models/{MODEL}  (accuracy: the estimate and its band "
            "first, the realized value when the labels come)",
        ),
        ("history", f"{base}/v1/models/{MODEL}/history"),
        ("verdicts", f"{base}/v1/models/{MODEL}/verdicts"),
        ("versions", f"{base}/v1/models/{MODEL}/versions"),
        ("accuracy over time", f"{base}/v1/models/{MODEL}/metrics?metric=accuracy"),
        ("estimated accuracy", f"{base}/v1/models/{MODEL}/metrics?metric=estimated_accuracy"),
        ("retraining jobs", f"{base}/v1/retrain-jobs"),
        ("Prometheus metrics", f"{base}/metrics"),
        ("API docs", f"{base}/docs"),
    ):
        console.print(f"  {what:<20} {url}")
    console.print(f"  {'raw events (DuckDB)':<20} {settings.lake_dir}/model={MODEL}/**/*.parquet")
