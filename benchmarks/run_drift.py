"""The drift benchmark: watchkeeper against its peers on the same seeded data, one run.

    bash benchmarks/setup_peers.sh           # once: peer venvs under benchmarks/.venvs/
    python benchmarks/run_drift.py           # 1M rows, all tools, 10 accuracy seeds
    python benchmarks/run_drift.py --rows 100000 --seeds 2 --tools watchkeeper,scipy-loop

Seed 0 is the timing run: every selected tool runs once per round, each in its own fresh
interpreter (see benchmarks/peers/_harness.py for what is measured), all on the same input
form (``--input``, by default pandas DataFrames with object strings, the form a user most
often has); in the same rounds watchkeeper and the scipy loop also run on the
``--extra-inputs`` forms (pandas ``category`` columns, pyarrow Tables), as extra rows. Seeds 1..N-1
repeat the drift detection for the ``--accuracy-tools`` only (all but Evidently by
default) to count false alarms and missed shifts over N independent data sets. The
profiling row times ``watchkeeper.profile`` and ``whylogs.log`` on seed 0's current frame.

Writes benchmarks/results/drift.json and benchmarks/results/drift.md (``--update-docs``
also copies the tables into docs/benchmarks.md); raw logs of each subprocess go to
benchmarks/results/raw/ (not committed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import data
import report
import tools
from docs_section import replace_section

RESULTS_DIR = tools.BENCH_DIR / "results"
RAW_DIR = RESULTS_DIR / "raw"
REPO_ROOT = tools.BENCH_DIR.parent
DOCS_PAGE = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_START, DOCS_END = "<!-- results:start -->", "<!-- results:end -->"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="watchkeeper drift benchmark against peers")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows per frame")
    p.add_argument("--seeds", type=int, default=10, help="data sets for the accuracy part")
    p.add_argument(
        "--tools",
        default=",".join(tools.TOOL_NAMES),
        help=f"comma-separated subset of {','.join(tools.TOOL_NAMES)}",
    )
    p.add_argument(
        "--accuracy-tools",
        default="watchkeeper,scipy-loop,alibi-detect,nannyml,whylogs",
        help="tools rerun on seeds 1..N-1 ('all' for every selected tool; Evidently is "
        "left out by default because it takes minutes per seed)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timing runs per tool on seed 0 (median reported; the machine is shared)",
    )
    p.add_argument(
        "--input",
        default=tools.FORMS[0],
        choices=tools.FORMS,
        help="the input form every tool gets (the headline rows)",
    )
    p.add_argument(
        "--extra-inputs",
        default=",".join(f for f in tools.FORMS if f != tools.FORMS[0]),
        help="comma-separated input forms the --extra-tools also run on, as extra rows "
        "('' for none)",
    )
    p.add_argument(
        "--extra-tools",
        default="watchkeeper,scipy-loop",
        help="tools run on the --extra-inputs too (those that take the form)",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the profiling-only row")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help=f"also replace the results section of {DOCS_PAGE.relative_to(REPO_ROOT)}",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        help="run nothing: re-render drift.md (and the docs) from an existing drift.json",
    )
    args = p.parse_args(argv)
    try:
        args.tool_list = [
            tools.get_tool(n.strip()).name for n in args.tools.split(",") if n.strip()
        ]
        if args.accuracy_tools.strip() == "all":
            args.accuracy_list = list(args.tool_list)
        else:
            names = [n.strip() for n in args.accuracy_tools.split(",") if n.strip()]
            wanted = {tools.get_tool(n).name for n in names}
            args.accuracy_list = [t for t in args.tool_list if t in wanted]
        extra_tools = {tools.get_tool(n.strip()).name for n in args.extra_tools.split(",") if n}
    except KeyError as exc:
        p.error(str(exc.args[0]))
    forms = [f.strip() for f in args.extra_inputs.split(",") if f.strip()]
    unknown = [f for f in forms if f not in tools.FORMS]
    if unknown:
        p.error(f"unknown input form {unknown[0]!r}; known: {', '.join(tools.FORMS)}")
    args.extra_list = [
        (t, f)
        for f in forms
        if f != args.input
        for t in args.tool_list
        if t in extra_tools and f in tools.get_tool(t).forms
    ]
    return args


def _machine() -> dict[str, Any]:
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def _source_state() -> dict[str, Any]:
    """The commit watchkeeper was measured at, and whether its sources had local edits."""

    def git(*cmd: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        return out.stdout.strip()

    status = git("status", "--porcelain", "--", "src")
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_modified": bool(status)}


def _jobs(args: argparse.Namespace) -> list[tuple[int, int, str, str, str]]:
    """(seed, repeat, tool, mode, input form) in run order: seed 0 timing rounds, then
    accuracy seeds.

    Each timing round runs every tool once (drift, then profiling), then the extra input
    forms, so a burst of load from elsewhere on the machine hits one round rather than all
    repeats of one tool.
    """
    jobs = []
    headline = [(t, args.input) for t in args.tool_list]
    for rep in range(max(1, args.repeat)):
        jobs += [(0, rep, t, "drift", f) for t, f in headline + args.extra_list]
        if not args.no_profile:
            jobs += [
                (0, rep, t, "profile", f)
                for t, f in headline + args.extra_list
                if tools.get_tool(t).profiles
            ]
    jobs += [
        (s, 0, t, "drift", args.input) for s in range(1, args.seeds) for t in args.accuracy_list
    ]
    return jobs


def row_name(tool: str, form: str, headline: str) -> str:
    """The name of a result row: the tool, and the input form when it is not the headline's."""
    return tool if form == headline else f"{tool} [{form}]"


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    jobs = _jobs(args)
    load_at_start = round(os.getloadavg()[0], 2)
    source = _source_state()
    results: list[dict[str, Any]] = []
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=len(jobs))
        for seed, rep, name, mode, form in jobs:
            progress.update(task, description=f"seed {seed}: generating data")
            ref, cur = data.ensure_data(args.rows, seed)
            progress.update(task, description=f"seed {seed}: {name} ({mode}, {form})")
            log = RAW_DIR / f"rows{args.rows}_seed{seed}_rep{rep}_{name}_{mode}_{form}.log"
            res = tools.run_tool(
                tools.get_tool(name), ref, cur, mode, timeout=args.timeout, form=form, log_path=log
            )
            res["seed"], res["repeat"] = seed, rep
            results.append(res)
            status = "[red]error[/red]" if res.get("error") else f"{res.get('seconds', 0):.2f} s"
            where = f"seed {seed}" + (f" run {rep + 1}" if seed == 0 else "")
            progress.console.print(f"  {where:<12} {name:<13} {mode:<8} {form:<19} {status}")
            progress.advance(task)
    res = _assemble(args, results)
    res["machine"]["load_average_1m_at_start"] = load_at_start
    res["watchkeeper_source"] = source
    return res


def _assemble(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    drift = [r for r in results if r["mode"] == "drift"]
    rows = [(t, args.input) for t in args.tool_list] + args.extra_list
    summary = {}
    for name, form in rows:
        mine = [r for r in drift if r["tool"] == name and r["input"] == form]
        timing = [r for r in mine if r["seed"] == 0]
        seed_runs = [r for r in mine if r["repeat"] == 0]
        summary[row_name(name, form, args.input)] = report.summarize_tool(timing, seed_runs)
    profile = {}
    for name, form in rows:
        runs = [
            r
            for r in results
            if r["mode"] == "profile" and r["tool"] == name and r["input"] == form
        ]
        if runs:
            profile[row_name(name, form, args.input)] = report.summarize_profile(runs)
    return {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "rows": args.rows,
            "seeds": args.seeds,
            "repeat": args.repeat,
            "tools": args.tool_list,
            "accuracy_tools": args.accuracy_list,
            "input": args.input,
            "extra_inputs": [list(pair) for pair in args.extra_list],
            "columns": {
                "numeric": data.numeric_columns(),
                "categorical": data.categorical_columns(),
            },
            "shifts": {s.column: s.description for s in data.SHIFTS},
            "apis": {t.name: t.api for t in tools.TOOLS if t.name in args.tool_list},
            "telemetry_off": tools.TELEMETRY_OFF,
        },
        "summary": summary,
        "ratios": report.ratios(summary),
        "profile": profile,
        "goals": [g.__dict__ for g in report.goals(summary, profile, args.seeds)],
        "runs": results,
    }


def _profile_rows(profile: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, p in profile.items():
        form = report.form_text(p.get("input"))
        if p.get("error"):
            rows.append([name, form, "-", "-", "-", report.cell_error(p["error"])])
        else:
            rows.append(
                [
                    name,
                    form,
                    f"{p['rows']:,}",
                    report.fmt_seconds(p["seconds"]),
                    f"{p['rows_per_s']:,.0f}",
                    "",
                ]
            )
    return rows


PROFILE_HEADER = ["tool", "input", "rows", "seconds", "rows/s", "error"]
GOAL_HEADER = ["goal", "target", "measured", "status"]


def to_markdown(res: dict[str, Any]) -> str:
    cfg, m = res["config"], res["machine"]
    matrix_header, matrix_rows = report.verdict_matrix(res["summary"])
    goal_rows = [[g["name"], g["target"], g["measured"], g["status"]] for g in res["goals"]]
    errors = report.error_lines(res)
    parts = [
        "# Drift benchmark results",
        "",
        f"Generated {res['generated']} by `python benchmarks/run_drift.py` - "
        f"{cfg['rows']:,} rows per frame, 20 numeric + 5 categorical columns, "
        f"6 shifted; {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}; "
        f"1-min load average {m['load_average_1m_at_start']} at start, "
        f"{m['load_average_1m_at_end']} at end.",
        f"watchkeeper at commit {_commit_text(res)}. "
        "Seconds and extra peak memory are for detection only (data loaded before the "
        f"timer), median of {res['config'].get('repeat', 1)} timing runs on seed 0; "
        '"over seeds" repeats detection on '
        f"{cfg['seeds']} independent data sets. {_input_text(cfg)}",
        "",
        report.markdown_table(report.MAIN_HEADER, report.main_rows(res["summary"])),
        "",
        "## Goals",
        "",
        report.markdown_table(GOAL_HEADER, goal_rows),
        "",
        *(["## Errors", "", *[f"- {e}" for e in errors], ""] if errors else []),
        "## Profiling alone (current frame)",
        "",
        report.markdown_table(PROFILE_HEADER, _profile_rows(res["profile"])),
        "",
        "## Per-column verdicts, seed 0 (X = flagged)",
        "",
        report.markdown_table(matrix_header, matrix_rows),
        "",
        "## What each tool ran",
        "",
        *[f"- **{name}**: {api}" for name, api in cfg["apis"].items()],
        "",
        "Every tool ran with its usage telemetry off: "
        + ", ".join(f"`{k}={v}`" for k, v in cfg.get("telemetry_off", {}).items())
        + ".",
        "",
    ]
    return "\n".join(parts)


def _input_text(cfg: dict[str, Any]) -> str:
    headline = cfg.get("input")
    if headline is None:  # results from before the input form was recorded
        return ""
    text = f"Every tool got the same input: {report.form_text(headline)}."
    if cfg.get("extra_inputs"):
        text += (
            " The rows marked [form] ran in the same rounds on another input form (the input"
            ' column); their "time / watchkeeper\'s" is against watchkeeper on that form.'
        )
    return text


def _commit_text(res: dict[str, Any]) -> str:
    src = res.get("watchkeeper_source") or {}
    commit = src.get("commit") or "unknown"
    return commit + (" with uncommitted changes in src/" if src.get("src_modified") else "")


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, header_style="bold")
    for h in header:
        table.add_column(h, overflow="fold")
    for r in rows:
        table.add_row(*r)
    return table


def show(res: dict[str, Any], console: Console) -> None:
    console.print(
        _rich_table(
            f"Drift, {res['config']['rows']:,} rows",
            report.MAIN_HEADER,
            report.main_rows(res["summary"]),
        )
    )
    goal_rows = []
    colors = {"pass": "green", "fail": "red", "pending": "yellow", "n/a": "dim"}
    for g in res["goals"]:
        color = colors[g["status"]]
        goal_rows.append([g["name"], g["target"], g["measured"], f"[{color}]{g['status']}[/]"])
    console.print(_rich_table("Goals", GOAL_HEADER, goal_rows))
    if res["profile"]:
        console.print(_rich_table("Profiling alone", PROFILE_HEADER, _profile_rows(res["profile"])))
    for line in report.error_lines(res):
        console.print(f"[red]error[/red] {escape(line)}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    # Wide enough for the tables when the output is piped to a file or a log.
    console = Console() if sys.stdout.isatty() else Console(width=170)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
        # Re-derive the verdicts so a re-render picks up changes to the goal logic.
        res["ratios"] = report.ratios(res["summary"])
        goals = report.goals(res["summary"], res["profile"], res["config"]["seeds"])
        res["goals"] = [g.__dict__ for g in goals]
    else:
        res = report.sanitize(run(args, console))
        (args.out / "drift.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    markdown = to_markdown(res)
    (args.out / "drift.md").write_text(markdown)
    show(res, console)
    console.print(f"wrote {args.out / 'drift.json'} and {args.out / 'drift.md'}")
    if args.update_docs:
        update_docs(markdown)
        console.print(f"updated {DOCS_PAGE.relative_to(REPO_ROOT)}")


def update_docs(markdown: str) -> None:
    replace_section(DOCS_PAGE, DOCS_START, DOCS_END, markdown)


if __name__ == "__main__":
    main()
