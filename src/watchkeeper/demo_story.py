"""What ``watchkeeper demo`` shows: the loop as it happens, then its story, read from the API.

:func:`watch` follows the model's history while the traffic runs and prints each step as it
is recorded, with the phase and live figures below; it returns once a window answered by the
promoted version has all its labels (``"recovered"``), or names the step that did not happen.
:class:`Story` reads the steps back from ``/v1/models/churn/history``, ``/v1/alerts``,
``/v1/retrain-jobs``, ``/verdicts`` and ``/metrics?metric=accuracy`` — the figures printed
are the service's — and :func:`print_story` prints them with their times.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watchkeeper.demo import MODEL, DemoPlan, Traffic, get

if TYPE_CHECKING:
    from watchkeeper.settings import Settings

# the steps of the loop, in order: (history kind, what the live display says next)
STEPS = (
    ("alert_firing", "alert fired; the retraining job exports its window"),
    ("shadow_started", "the retrained version scores every request in shadow"),
    ("verdict", "verdict made"),
    ("promoted", "promoted; waiting for a full window of the new champion with its labels"),
)


def accuracy(base: str, version: str) -> list[dict[str, Any]]:
    """The version's accuracy points (oldest first) that have a value."""
    url = f"{base}/v1/models/{MODEL}/metrics?metric=accuracy&version={version}"
    return [p for p in get(url)["points"] if p["value"] is not None]


def oldest_first(base: str) -> list[dict[str, Any]]:
    return list(reversed(get(f"{base}/v1/models/{MODEL}/history?limit=1000")["events"]))


def watch(base: str, plan: DemoPlan, traffic: Traffic, console: Any, deadline: float) -> str:
    """Follow the loop until it has recovered (``"recovered"``) or cannot go on (the reason)."""
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
            kinds = {e["kind"]: e for e in events}
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
    return "the world has changed; labels arrive a window late"


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

    @classmethod
    def read(
        cls,
        base: str,
        started: float,
        change_at: float,
        baseline: float,
        threshold: float,
        outcome: str,
    ) -> Story:
        story = cls(outcome)
        events = oldest_first(base)

        def step(at: float, kind: str, text: str) -> None:
            story.steps.append((round(at - started, 1), kind, text))

        old_world = [
            p for p in accuracy(base, "v1") if p["window_start"] + p["window_seconds"] <= change_at
        ]
        if old_world:  # the last window before the change (the first may hold one batch)
            story.accuracy_before = max(old_world, key=lambda p: p["window_start"])["value"]
        step(started, "version_registered", f"v1 serving: trained accuracy {baseline:.3f}")
        step(change_at, "world_changed", "the world changes: input drift and concept drift")
        for e in events:
            kind, d = e["kind"], e.get("detail") or {}
            if kind == "alert_firing":
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
    ok = story["outcome"] == "recovered"
    console.print(f"[{'green' if ok else 'red'}]{story['outcome']}[/]")


def print_where_to_look(console: Any, base: str, settings: Settings) -> None:
    console.print("[bold]where to look[/]")
    for what, url in (
        ("dashboard", f"{base}/ui/models/{MODEL}"),
        ("history", f"{base}/v1/models/{MODEL}/history"),
        ("verdicts", f"{base}/v1/models/{MODEL}/verdicts"),
        ("versions", f"{base}/v1/models/{MODEL}/versions"),
        ("accuracy over time", f"{base}/v1/models/{MODEL}/metrics?metric=accuracy"),
        ("retraining jobs", f"{base}/v1/retrain-jobs"),
        ("Prometheus metrics", f"{base}/metrics"),
        ("API docs", f"{base}/docs"),
    ):
        console.print(f"  {what:<20} {url}")
    console.print(f"  {'raw events (DuckDB)':<20} {settings.lake_dir}/model={MODEL}/**/*.parquet")
