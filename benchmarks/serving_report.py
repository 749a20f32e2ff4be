"""Tables, goals and the latency plot of the serving benchmark (``serving.py``), from its
results: the overhead of each server over the floor is computed from one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from docs_section import replace_section

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DOCS = BENCH.parent / "docs"
QUANTILES = [i / 2 for i in range(201)] + [99.9]  # 0, 0.5, ..., 100 % and 99.9 %
GOALS = {"median_ms": 0.5, "p99_ms": 2.0, "throughput": 0.8}
SHADOW = "not measured: no run of watchkeeper + shadow in the results"


def _key(run: dict[str, Any]) -> tuple[str, int, int]:
    return run["model"], run["rows"], run["concurrency"]


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Each run's overhead over the floor of its configuration, and the goals."""
    floors = {_key(r): r for r in results["runs"] if r["server"] == "floor" and not r["error"]}
    for run in results["runs"]:
        floor = floors.get(_key(run))
        if run["error"] or floor is None:
            continue
        run["over_floor_median_ms"] = run["median_ms"] - floor["median_ms"]
        run["over_floor_p99_ms"] = run["p99_ms"] - floor["p99_ms"]
        run["throughput_of_floor"] = run["requests_per_s"] / floor["requests_per_s"]
        run["server_cpu_ms_per_request"] = 1000 * run["server_cpu_seconds"] / run["requests"]
    goals = []
    for run in results["runs"]:
        if run["server"] != "watchkeeper" or run["rows"] != 1 or "over_floor_p99_ms" not in run:
            continue
        what = f"{run['endpoint'].split()[1]}, {run['model']}"
        if run["concurrency"] == 1:
            goals.append(
                _goal(
                    f"overhead, median ({what})",
                    "<= 0.5 ms",
                    run["over_floor_median_ms"],
                    GOALS["median_ms"],
                    "{:+.2f} ms",
                )
            )
            goals.append(
                _goal(
                    f"overhead, p99 ({what})",
                    "<= 2 ms",
                    run["over_floor_p99_ms"],
                    GOALS["p99_ms"],
                    "{:+.2f} ms",
                )
            )
        else:
            goals.append(_goal(f"throughput, {run['concurrency']} connections ({what})",
                               ">= 80 % of the floor", run["throughput_of_floor"],
                               GOALS["throughput"], "{:.0%}", at_least=True))  # fmt: skip
    goals.append(_shadow(results["runs"]))
    return {"goals": goals}


def _shadow(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The champion's p99 with a challenger in shadow against without (one row, one
    connection, the v1 endpoint, the first model measured)."""
    plain = {r["model"]: r for r in runs if r["server"] == "watchkeeper" and r["rows"] == 1
             and r["concurrency"] == 1 and "/v1/" in r["endpoint"] and not r["error"]}  # fmt: skip
    for run in runs:
        base = plain.get(run["model"])
        if run["server"] != "watchkeeper + shadow" or run["rows"] != 1 or run["error"]:
            continue
        if run["concurrency"] != 1 or base is None:
            continue
        moved = run["p99_ms"] / base["p99_ms"] - 1
        name = (
            f"shadow on: the champion's p99 ({run['model']}, {base['p99_ms']:.2f} -> "
            f"{run['p99_ms']:.2f} ms)"
        )
        return _goal(name, "moves < 10 %", moved, 0.10, "{:+.0%}")
    return {"goal": "shadow on: the champion's p99", "target": "moves < 10 %",
            "measured": SHADOW, "status": "not measured"}  # fmt: skip


def _goal(
    name: str, target: str, value: float, limit: float, fmt: str, *, at_least: bool = False
) -> dict[str, Any]:
    ok = value >= limit if at_least else value <= limit
    return {"goal": name, "target": target, "measured": fmt.format(value), "value": value,
            "status": "pass" if ok else "fail"}  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    v = results["versions"]
    load = f"{results['load_start'][0]:.1f} at start, {results['load_end'][0]:.1f} at end"
    lines = [
        "# Serving benchmark",
        "",
        f"Generated {results['started']} by `python benchmarks/serving.py` - watchkeeper "
        f"{v['watchkeeper']} at commit {results['commit']} ({results['store']} state store), "
        f"MLflow {v['mlflow-skinny']} (mlflow-skinny), FastAPI {v['fastapi']}, uvicorn "
        f"{v['uvicorn']}, onnxruntime {v['onnxruntime']}, scikit-learn {v['scikit-learn']}; "
        f"{results['cpus']} CPUs shared with other work, 1-minute load average {load}; "
        f"Python {results['python']}. A scaled logistic regression on {results['features']} "
        "features; each server one process, one uvicorn worker, on loopback; threads = the "
        "server's threads per process at the end of the configuration (watchkeeper: the "
        "server, then its processor and that one's child); watchkeeper's CPU includes its "
        "processor's work on the logged events.",
        "",
        "| model | rows | conns | server | endpoint | median ms | p99 ms | req/s "
        "| server CPU ms/req | threads | median over floor | p99 over floor | × floor req/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        head = f"| {r['model']} | {r['rows']} | {r['concurrency']} | {r['server']} | " \
               f"`{r['endpoint']}` |"  # fmt: skip
        if r["error"]:
            lines.append(f"{head} error: {r['error'][:120]} |||||||||")
            continue
        over = (
            f"{r['over_floor_median_ms']:+.2f} | {r['over_floor_p99_ms']:+.2f} | "
            f"{r['throughput_of_floor']:.0%}"
            if r["server"] != "floor"
            else "- | - | -"
        )
        lines.append(
            f"{head} {r['median_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests_per_s']:,.0f} | "
            f"{r.get('server_cpu_ms_per_request', 0):.2f} | "
            f"{'+'.join(map(str, r['server_threads']))} | {over} |"
        )
    failed = sum(r.get("failures") or 0 for r in results["runs"])
    lines += ["", f"Failed requests in the timed part: {failed}.", "", "## Goals", "",
              "| goal | target | measured | status |", "|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {g['goal']} | {g['target']} | {g['measured']} | {g['status']} |"
        for g in results["summary"]["goals"]
    ]
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], console: Console, *, update_docs: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    name = _name(results)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (RESULTS / f"{name}.md").write_text(md)
    table = Table("model", "rows", "c", "server", "endpoint", "median ms", "p99 ms", "req/s",
                  "over floor (median / p99)", title="serving")  # fmt: skip
    for r in results["runs"]:
        if r["error"]:
            table.add_row(r["model"], str(r["rows"]), str(r["concurrency"]), r["server"],
                          r["endpoint"], "error", r["error"][:60], "", "")  # fmt: skip
            continue
        over = (
            f"{r['over_floor_median_ms']:+.2f} / {r['over_floor_p99_ms']:+.2f}"
            if r["server"] != "floor"
            else "-"
        )
        table.add_row(r["model"], str(r["rows"]), str(r["concurrency"]), r["server"],
                      r["endpoint"], f"{r['median_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      f"{r['requests_per_s']:,.0f}", over)  # fmt: skip
    console.print(table)
    for g in results["summary"]["goals"]:
        console.print(f"{g['status']:>12}  {g['goal']}: {g['measured']} (target {g['target']})")
    try:
        plot(results)
    except ImportError:
        console.print(
            "matplotlib is not installed: plot later with "
            f"`python benchmarks/serving.py --plot benchmarks/results/{name}.json`"
        )
    if update_docs:
        replace_section(
            DOCS / "benchmarks.md", f"<!-- {name}:start -->", f"<!-- {name}:end -->", md
        )


def _name(results: dict[str, Any]) -> str:
    return "serving-" + "-".join(results["models"])


def plot(results: dict[str, Any]) -> None:
    """The latency distributions (one panel per configuration), as a PNG in docs/images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(_key(r) for r in results["runs"]))
    nrows = len(results["models"])
    cols = -(-len(keys) // nrows)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4.5 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for r in results["runs"]:
            if _key(r) != key or r["error"]:
                continue
            label = r["server"] if r["server"] != "watchkeeper" else \
                f"watchkeeper {r['endpoint'].split()[1].split('/')[1]}"  # fmt: skip
            qs = r["quantiles_ms"][: len(QUANTILES) - 1]
            ax.plot(qs, QUANTILES[:-1], label=label)
        model, rows, conc = key
        ax.set_title(f"{model}, {rows} row(s) per request, {conc} connection(s)")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_ylabel("% of requests answered within")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Serving latency, {results['started']} (load {results['load_start'][0]:.1f})")
    fig.tight_layout()
    png = DOCS / "images" / f"{_name(results).replace('serving-', 'serving-latency-')}.png"
    png.parent.mkdir(exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
