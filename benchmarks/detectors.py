"""Sequential change detectors: watchkeeper's against river's, on the same seeded streams.

    python benchmarks/detectors.py                          # 30 seeds; river's KSWIN on 3
    python benchmarks/detectors.py --seeds 5 --slow-seeds 1  # a quick look

Every detector runs with its defaults on the same streams (one set per scenario and seed):

* ``errors 0.10→0.20``: a 0/1 error stream, rate 0.10 for 10,000 values, then 0.20 for 10,000;
* ``errors 0.10→0.15 after 50k``: rate 0.10 for 50,000 values, then 0.15 for 10,000;
* ``metric mean +0.5σ``: N(0, 1) for 10,000 values, then N(0.5, 1) for 5,000;
* ``metric spread ×2``: N(0, 1) for 10,000 values, then N(0, 2²) for 5,000;
* ``errors stationary`` (rate 0.10) and ``metric stationary`` (N(0, 1)): 100,000 values each.

Per detector and scenario: the mean and median delay (changed values fed up to and including
the one that raised the first alarm after the change), misses (no alarm before the stream
ends), and false alarms per 10,000 values (alarms before the change, and every alarm on the
stationary streams). A detector restarts after each alarm, so a false alarm just before the
change can delay the true one; that is part of the measure. Detectors for 0/1 streams
(watchkeeper's Bernoulli charts, river's ``drift.binary``) run on the error scenarios only,
the Gaussian charts on the metric ones only. watchkeeper's detectors are fed with
``update_many`` (the same detections as a loop of ``update``, which the tests check); river's
one value at a time. river's KSWIN (about 600 values/s) runs on ``--slow-seeds`` seeds and the
first 20,000 values of the stationary stream only.

Speed: values/s of a loop of ``update(x)`` over 200,000 values (20,000 for KSWIN), and of
``update_many`` over 2,000,000 values for watchkeeper's, on a stationary stream of the
detector's kind; best of ``--repeat`` runs.

Writes benchmarks/results/detectors.json and benchmarks/results/detectors.md; ``--update-docs``
also copies the tables into docs/detectors.md, and ``--from-json`` re-renders the tables from an
earlier detectors.json without running anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import river
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from river import drift
from river.drift import binary

import watchkeeper
from docs_section import replace_section
from watchkeeper.stats.detectors import (
    ADWIN,
    BernoulliCUSUM,
    CalibratedCUSUM,
    GaussianCUSUM,
    PageHinkley,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
DOCS_PAGE = BENCH_DIR.parent / "docs" / "detectors.md"
DOCS_START, DOCS_END = "<!-- detector results:start -->", "<!-- detector results:end -->"
SLOW_STATIONARY = 20_000  # values of the stationary stream fed to the slow detectors


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "errors" or "metric"
    before: int  # values before the change (the whole stream when stationary)
    after: int
    draw: Callable[[np.random.Generator, int], np.ndarray]  # (rng, n) -> changed values

    @property
    def change(self) -> int | None:
        return self.before if self.after else None

    def stream(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng([SCENARIOS.index(self), seed])
        if self.kind == "errors":
            first = (rng.random(self.before) < 0.10).astype(np.float64)
        else:
            first = rng.normal(0.0, 1.0, self.before)
        return np.concatenate([first, self.draw(rng, self.after)])


def _errors(rate: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, n: (rng.random(n) < rate).astype(np.float64)


def _normal(mean: float, std: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, n: rng.normal(mean, std, n)


SCENARIOS = [
    Scenario("errors 0.10→0.20", "errors", 10_000, 10_000, _errors(0.20)),
    Scenario("errors 0.10→0.15 after 50k", "errors", 50_000, 10_000, _errors(0.15)),
    Scenario("metric mean +0.5σ", "metric", 10_000, 5_000, _normal(0.5, 1.0)),
    Scenario("metric spread ×2", "metric", 10_000, 5_000, _normal(0.0, 2.0)),
    Scenario("errors stationary", "errors", 100_000, 0, _errors(0.10)),
    Scenario("metric stationary", "metric", 100_000, 0, _normal(0.0, 1.0)),
]


@dataclass(frozen=True)
class Tool:
    name: str
    origin: str  # "watchkeeper" or "river"
    kinds: tuple[str, ...]
    make: Callable[[int], Any]  # seed -> a fresh detector
    slow: bool = False

    @property
    def ours(self) -> bool:
        return self.origin == "watchkeeper"


BOTH = ("errors", "metric")
TOOLS = [
    Tool(
        "CalibratedCUSUM (bernoulli)",
        "watchkeeper",
        ("errors",),
        lambda s: CalibratedCUSUM("bernoulli"),
    ),
    Tool(
        "CalibratedCUSUM (gaussian)",
        "watchkeeper",
        ("metric",),
        lambda s: CalibratedCUSUM("gaussian"),
    ),
    Tool(
        "CalibratedCUSUM (bernoulli, 1 false alarm / 100k)",
        "watchkeeper",
        ("errors",),
        lambda s: CalibratedCUSUM("bernoulli", false_alarm_every=100_000),
    ),
    Tool(
        "CalibratedCUSUM (gaussian, 1 false alarm / 100k)",
        "watchkeeper",
        ("metric",),
        lambda s: CalibratedCUSUM("gaussian", false_alarm_every=100_000),
    ),
    Tool("BernoulliCUSUM", "watchkeeper", ("errors",), lambda s: BernoulliCUSUM()),
    Tool("GaussianCUSUM", "watchkeeper", ("metric",), lambda s: GaussianCUSUM()),
    Tool("ADWIN", "watchkeeper", BOTH, lambda s: ADWIN()),
    Tool("PageHinkley", "watchkeeper", BOTH, lambda s: PageHinkley()),
    Tool("river ADWIN", "river", BOTH, lambda s: drift.ADWIN()),
    Tool("river PageHinkley", "river", BOTH, lambda s: drift.PageHinkley()),
    Tool("river KSWIN", "river", ("metric",), lambda s: drift.KSWIN(seed=s), slow=True),
    Tool("river DDM", "river", ("errors",), lambda s: binary.DDM()),
    Tool("river EDDM", "river", ("errors",), lambda s: binary.EDDM()),
    Tool("river HDDM_A", "river", ("errors",), lambda s: binary.HDDMA()),
    Tool("river HDDM_W", "river", ("errors",), lambda s: binary.HDDMW()),
    Tool("river FHDDM", "river", ("errors",), lambda s: binary.FHDDM()),
]


def detections(tool: Tool, detector: Any, stream: np.ndarray) -> list[int]:
    if tool.ours:
        return [int(i) for i in detector.update_many(stream)]
    hits = []
    for i, x in enumerate(stream.tolist()):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


def score(scenario: Scenario, stream: np.ndarray, hits: list[int]) -> dict[str, Any]:
    change = scenario.change
    if change is None:
        return {
            "values": int(stream.size),
            "false_alarms": len(hits),
            "null_values": int(stream.size),
        }
    after = [h for h in hits if h >= change]
    return {
        "values": int(stream.size),
        "false_alarms": sum(h < change for h in hits),
        "null_values": change,
        "delay": after[0] - change + 1 if after else None,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    delays = [r["delay"] for r in runs if r.get("delay") is not None]
    has_change = any("delay" in r for r in runs)
    fa = sum(r["false_alarms"] for r in runs)
    null = sum(r["null_values"] for r in runs)
    return {
        "runs": len(runs),
        "mean_delay": statistics.fmean(delays) if delays else None,
        "median_delay": statistics.median(delays) if delays else None,
        "misses": sum(r.get("delay") is None for r in runs) if has_change else None,
        "false_alarms": fa,
        "null_values": null,
        "false_alarms_per_10k": 1e4 * fa / null if null else None,
    }


def speed_stream(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(12345)
    if kind == "errors":
        return (rng.random(n) < 0.10).astype(np.float64)
    return rng.normal(0.0, 1.0, n)


def measure_speed(tool: Tool, repeat: int) -> dict[str, Any]:
    kind = tool.kinds[0]
    n_loop = 2_000 if tool.slow else 200_000
    values = speed_stream(kind, n_loop).tolist()
    best_loop = float("inf")
    for _ in range(repeat):
        d = tool.make(0)
        start = time.perf_counter()
        for x in values:
            d.update(x)
        best_loop = min(best_loop, time.perf_counter() - start)
    out: dict[str, Any] = {"stream": kind, "update_per_s": n_loop / best_loop}
    if tool.ours:
        big = speed_stream(kind, 2_000_000)
        best = float("inf")
        for _ in range(repeat):
            d = tool.make(0)
            start = time.perf_counter()
            d.update_many(big)
            best = min(best, time.perf_counter() - start)
        out["update_many_per_s"] = big.size / best
    return out


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    tools = [t for t in TOOLS if not args.tools or t.name in args.tools]
    jobs = []
    for tool in tools:
        seeds = args.slow_seeds if tool.slow else args.seeds
        jobs += [
            (tool, sc, seed) for sc in SCENARIOS if sc.kind in tool.kinds for seed in range(seeds)
        ]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    load_start = round(os.getloadavg()[0], 2)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("detectors", total=len(jobs) + len(tools))
        for tool, sc, seed in jobs:
            progress.update(task, description=f"{tool.name}: {sc.name}, seed {seed}")
            stream = sc.stream(seed)
            if tool.slow and sc.change is None:
                stream = stream[:SLOW_STATIONARY]
            hits = detections(tool, tool.make(seed), stream)
            runs.setdefault((tool.name, sc.name), []).append(
                {"seed": seed, **score(sc, stream, hits)}
            )
            progress.advance(task)
        speed = {}
        for tool in tools:
            progress.update(task, description=f"{tool.name}: speed")
            speed[tool.name] = measure_speed(tool, args.repeat)
            progress.advance(task)
    results = []
    for tool in tools:
        tool_runs = []
        for sc in SCENARIOS:
            if (tool.name, sc.name) in runs:
                r = runs[(tool.name, sc.name)]
                tool_runs += r
                results.append({"tool": tool.name, "scenario": sc.name, **summarize(r)})
        overall = summarize(tool_runs)
        speed[tool.name]["false_alarms_per_10k"] = overall["false_alarms_per_10k"]
    return {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": load_start,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "versions": {
            "watchkeeper": watchkeeper.__version__,
            "river": river.__version__,
            "numpy": np.__version__,
        },
        "watchkeeper_commit": _commit(),
        "config": {
            "seeds": args.seeds,
            "slow_seeds": args.slow_seeds,
            "repeat": args.repeat,
            "scenarios": [
                {"name": s.name, "kind": s.kind, "before": s.before, "after": s.after}
                for s in SCENARIOS
            ],
            "tools": {t.name: t.origin for t in tools},
        },
        "results": results,
        "speed": speed,
        "goals": goals(results, speed),
        "runs": {f"{k[0]} | {k[1]}": v for k, v in runs.items()},
    }


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + (
        " with uncommitted changes in src/" if dirty.stdout.strip() else ""
    )


def _find(results: list[dict[str, Any]], tool: str, scenario: str) -> dict[str, Any] | None:
    return next((r for r in results if r["tool"] == tool and r["scenario"] == scenario), None)


def goals(results: list[dict[str, Any]], speed: dict[str, Any]) -> list[dict[str, str]]:
    """The issue's goals: shorter delays than river's ADWIN at <= 0.1 false alarms per 10k
    values, and >= 1M updates/s through update_many."""
    out = []
    for sc in SCENARIOS:
        if sc.change is None:
            continue
        ours = (
            "CalibratedCUSUM (bernoulli)" if sc.kind == "errors" else "CalibratedCUSUM (gaussian)"
        )
        mine, theirs = _find(results, ours, sc.name), _find(results, "river ADWIN", sc.name)
        if not mine or not theirs:
            continue
        d_ours, d_adwin = mine["mean_delay"], theirs["mean_delay"]
        ok = (
            d_ours is not None
            and (d_adwin is None or d_ours < d_adwin)
            and mine["misses"] <= theirs["misses"]
        )
        out.append(
            {
                "goal": f"{ours}: shorter mean delay than river ADWIN, {sc.name}",
                "target": f"< {_fmt(d_adwin)} (river ADWIN, {theirs['misses']} misses)",
                "measured": f"{_fmt(d_ours)} ({mine['misses']} misses)",
                "status": "pass" if ok else "fail",
            }
        )
    for name in speed:
        if name in ("CalibratedCUSUM (bernoulli)", "CalibratedCUSUM (gaussian)"):
            fa = speed[name]["false_alarms_per_10k"]
            out.append(
                {
                    "goal": f"{name}: false alarms, all null values",
                    "target": "<= 0.1 per 10k",
                    "measured": f"{fa:.3f} per 10k",
                    "status": "pass" if fa <= 0.1 else "fail",
                }
            )
    for name, sp in speed.items():
        if "update_many_per_s" in sp:
            v = sp["update_many_per_s"]
            out.append(
                {
                    "goal": f"{name}: update_many throughput",
                    "target": ">= 1,000,000 values/s",
                    "measured": f"{v:,.0f} values/s",
                    "status": "pass" if v >= 1e6 else "fail",
                }
            )
    return out


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


RESULT_HEADER = [
    "scenario",
    "detector",
    "runs",
    "mean delay",
    "median delay",
    "misses",
    "false alarms / 10k",
]
SPEED_HEADER = [
    "detector",
    "stream",
    "update() values/s",
    "update_many() values/s",
    "false alarms / 10k (all null values)",
]
GOAL_HEADER = ["goal", "target", "measured", "status"]


def result_rows(res: dict[str, Any]) -> list[list[str]]:
    rows = []
    for sc in SCENARIOS:
        for r in res["results"]:
            if r["scenario"] != sc.name:
                continue
            rows.append(
                [
                    sc.name,
                    r["tool"],
                    str(r["runs"]),
                    _fmt(r["mean_delay"]),
                    _fmt(r["median_delay"]),
                    "-" if r["misses"] is None else str(r["misses"]),
                    _fmt(r["false_alarms_per_10k"], 3),
                ]
            )
    return rows


def speed_rows(res: dict[str, Any]) -> list[list[str]]:
    return [
        [
            name,
            sp["stream"],
            _fmt(sp["update_per_s"]),
            _fmt(sp.get("update_many_per_s")),
            _fmt(sp["false_alarms_per_10k"], 3),
        ]
        for name, sp in res["speed"].items()
    ]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def to_markdown(res: dict[str, Any]) -> str:
    m, cfg = res["machine"], res["config"]
    goal_rows = [[g["goal"], g["target"], g["measured"], g["status"]] for g in res["goals"]]
    return "\n".join(
        [
            "# Change detector benchmark results",
            "",
            f"Generated {res['generated']} by `python benchmarks/detectors.py`: "
            f"{cfg['seeds']} seeds per scenario ({cfg['slow_seeds']} for river's KSWIN), "
            "every detector with its defaults unless its name says otherwise; "
            f"watchkeeper {res['versions']['watchkeeper']} at {res['watchkeeper_commit']}, "
            f"river {res['versions']['river']}; {m['cpus']} CPUs, Python {m['python']}, "
            f"1-min load average {m['load_average_1m_at_start']} at start, "
            f"{m['load_average_1m_at_end']} at end.",
            "",
            "## Delays and false alarms",
            "",
            markdown_table(RESULT_HEADER, result_rows(res)),
            "",
            "## Speed",
            "",
            markdown_table(SPEED_HEADER, speed_rows(res)),
            "",
            "## Goals",
            "",
            markdown_table(GOAL_HEADER, goal_rows),
            "",
        ]
    )


def show(res: dict[str, Any], console: Console) -> None:
    for title, header, rows in (
        ("Delays and false alarms", RESULT_HEADER, result_rows(res)),
        ("Speed", SPEED_HEADER, speed_rows(res)),
        (
            "Goals",
            GOAL_HEADER,
            [[g["goal"], g["target"], g["measured"], g["status"]] for g in res["goals"]],
        ),
    ):
        table = Table(*header, title=title, header_style="bold")
        for r in rows:
            table.add_row(*r)
        console.print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=30, help="streams per scenario")
    p.add_argument("--slow-seeds", type=int, default=3, help="streams per scenario for KSWIN")
    p.add_argument("--repeat", type=int, default=3, help="speed runs per detector (best kept)")
    p.add_argument(
        "--tools",
        type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
        default=None,
        help="comma-separated subset of: " + ", ".join(t.name for t in TOOLS),
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument(
        "--update-docs", action="store_true", help="also put the tables into docs/detectors.md"
    )
    p.add_argument("--from-json", type=Path, help="run nothing: re-render from a detectors.json")
    args = p.parse_args(argv)
    unknown = set(args.tools or ()) - {t.name for t in TOOLS}
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    console = Console(width=170)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        res = run(args, console)
        (args.out / "detectors.json").write_text(json.dumps(res, indent=2) + "\n")
    show(res, console)
    markdown = to_markdown(res)
    (args.out / "detectors.md").write_text(markdown)
    console.print(f"wrote {args.out / 'detectors.json'} and {args.out / 'detectors.md'}")
    if args.update_docs:
        update_docs(markdown)
        console.print(f"updated {DOCS_PAGE}")


def update_docs(markdown: str) -> None:
    replace_section(DOCS_PAGE, DOCS_START, DOCS_END, markdown)


if __name__ == "__main__":
    main()
