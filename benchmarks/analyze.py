"""The chunked benchmark: a whole period, chunk by chunk, against NannyML and Evidently.

    bash benchmarks/setup_peers.sh evidently nannyml    # once: the peers' venvs
    python benchmarks/analyze.py                        # every part, one run
    python benchmarks/analyze.py --seeds 1 --skip-generated --update-docs

Each tool runs in a fresh interpreter of its own venv with its usage telemetry off
(``tools.run_tool``, ``peers/_harness.py``: wall time, CPU time and most threads of the timed
step; the Parquet files are read into pandas before the timer), on the same chunks:

* **watchkeeper**: ``Reference.fit(reference, multivariate=None).analyze(analysis,
  chunk_size=...)``: per-column drift and data quality (the joint PCA check is off, since the
  peers' calculators here are per column too);
* **nannyml**: ``UnivariateDriftCalculator(column_names=..., chunk_size=...)`` with its
  defaults (Jensen-Shannon, mean + 3 standard deviations of the reference's chunks), fit and
  calculate;
* **evidently**: ``Report([DataDriftPreset()])`` run once per chunk against the reference
  (its defaults: KS / chi-square p < 0.05 up to 1,000 rows, normed Wasserstein /
  Jensen-Shannon > 0.1 above), optionally stopped after a time budget: the table then says how
  many chunks were done and extrapolates its seconds to all chunks.

Parts (data: ``analyze_data.py``):

1. *Speed*, on NannyML's four synthetic datasets (their analysis periods, chunks of 5,000
   rows) and on the generated 10-million-row set (chunks of 1,000,000). NannyML's analysis
   periods have no cell-level ground truth; the table counts flagged cells in the first and
   the second half of the chunks (the documented drift is in the second half). The generated
   set's ground truth is exact.
2. *Small chunks*, on controlled shifts built onto NannyML's reference rows: chunks of 1,000
   rows, a drifted cell being a (chunk, column) that was shifted. Detection rate = flagged
   drifted cells / drifted cells; false-alarm rate = flagged clean cells / clean cells.

Writes benchmarks/results/analyze.json and analyze.md; ``--update-docs`` copies the tables
into docs/benchmarks.md and docs/analyze.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

import analyze_data as ad
import report
import tools
from docs_section import replace_section

RESULTS = tools.BENCH_DIR / "results"
REPO = tools.BENCH_DIR.parent
TOOLS = ("watchkeeper", "nannyml", "evidently")
SPEED_CHUNK = 5_000
MARKERS = ("<!-- analyze:start -->", "<!-- analyze:end -->")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="chunked drift benchmark against NannyML, Evidently")
    p.add_argument("--seeds", type=int, default=5, help="controlled-shift splits per dataset")
    p.add_argument("--evidently-seeds", type=int, default=1, help="of those, run by Evidently")
    p.add_argument("--budget", type=float, default=300.0, help="Evidently's seconds per run")
    p.add_argument("--skip-generated", action="store_true", help="leave out the 10M-row set")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--update-docs", action="store_true")
    p.add_argument("--from-json", type=Path, help="re-render from an existing analyze.json")
    return p.parse_args(argv)


def _run(tool: str, ref: Path, cur: Path, chunk: int, args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--chunk-size", str(chunk)]
    if tool == "evidently":
        extra += ["--budget", str(args.budget)]
    res = tools.run_tool(
        tools.get_tool(tool), ref, cur, "chunks", timeout=args.timeout, extra_args=extra
    )
    status = res.get("error") or f"{res.get('seconds', 0):.2f} s"
    print(f"  {cur.parent.name:<28} {tool:<12} {status}", flush=True)
    return res


def _score(res: dict[str, Any], truth: list[list[Any]], columns: list[str]) -> dict[str, Any]:
    """Detections and false alarms of one run against the drifted cells ``truth``."""
    details = res.get("details") or {}
    done = int(details.get("done") or 0)
    flagged = {(int(i), c) for i, c in details.get("cells", [])}
    drifted = {(int(i), c): kind for i, c, kind in truth if int(i) < done}
    clean = {(i, c) for i in range(done) for c in columns} - set(drifted)
    found = Counter(kind for cell, kind in drifted.items() if cell in flagged)
    return {
        "drifted": dict(Counter(drifted.values())),
        "found": dict(found),
        "clean": len(clean),
        "false_alarms": len(flagged & clean),
        "chunks": details.get("chunks"),
        "done": done,
    }


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("drifted", "found"):
        for kind, n in part[key].items():
            total.setdefault(key, {})[kind] = total.setdefault(key, {}).get(kind, 0) + n
    for key in ("clean", "false_alarms"):
        total[key] = total.get(key, 0) + part[key]


def speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    sets = [
        (name, ad.ROOT / name / "reference.parquet", ad.ROOT / name / "analysis.parquet")
        for name in ad.NANNYML_SETS
    ]
    if not args.skip_generated:
        sets.append(("generated 10M", *ad.generated()))
    rows = []
    for name, ref, cur in sets:
        generated = name.startswith("generated")
        chunk = ad.GENERATED_CHUNK if generated else SPEED_CHUNK
        for tool in TOOLS:
            res = _run(tool, ref, cur, chunk, args)
            details = res.get("details") or {}
            cells = [int(i) for i, _ in details.get("cells", [])]
            half = (details.get("chunks") or 0) // 2
            row = {"data": name, "tool": tool, "chunk_size": chunk, "run": res}
            row["halves"] = [sum(i < half for i in cells), sum(i >= half for i in cells)]
            if generated:
                row["score"] = _score(res, ad.generated_truth(), pq.read_schema(ref).names)
            rows.append(row)
    return rows


def small_chunks(args: argparse.Namespace, summary: dict[str, Any]) -> dict[str, Any]:
    totals: dict[str, dict[str, Any]] = {t: {} for t in TOOLS}
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for name in ad.NANNYML_SETS:
            ref, cur, truth = ad.controlled(name, seed)
            columns = summary["datasets"][name]["columns"]
            for tool in TOOLS:
                if tool == "evidently" and seed >= args.evidently_seeds:
                    continue
                res = _run(tool, ref, cur, ad.SMALL_CHUNK, args)
                score = _score(res, truth, columns)
                _add(totals[tool], score)
                runs.append(
                    {
                        "data": name,
                        "seed": seed,
                        "tool": tool,
                        "score": score,
                        "seconds": res.get("seconds"),
                        "cpu_seconds": res.get("cpu_seconds"),
                        "error": res.get("error"),
                    }
                )
    return {"totals": totals, "runs": runs}


def _pct(n: int, d: int) -> str:
    return "-" if not d else f"{100 * n / d:.1f} % ({n}/{d})"


def _seconds(run: dict[str, Any], key: str) -> tuple[float | None, str]:
    """(seconds for all chunks, a note): extrapolated when a time budget stopped the run."""
    value, details = run.get(key), run.get("details") or {}
    done, chunks = details.get("done"), details.get("chunks")
    if value is None or not done or not chunks or done >= chunks:
        return value, ""
    return value * chunks / done, f"{done} of {chunks} chunks run, time x {chunks / done:.1f}"


def speed_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "data",
        "chunks",
        "tool",
        "seconds",
        "CPU s",
        "threads",
        "x watchkeeper (wall / CPU)",
        "flagged cells, 1st / 2nd half",
        "note",
    ]
    out, base = [], {}
    for r in rows:
        run = r["run"]
        wall, note = _seconds(run, "seconds")
        cpu, _ = _seconds(run, "cpu_seconds")
        if r["tool"] == "watchkeeper":
            base[r["data"]] = (wall, cpu)
        ratio = "-"
        ref_wall, ref_cpu = base.get(r["data"], (None, None))
        if wall and cpu and ref_wall and ref_cpu:
            ratio = f"{wall / ref_wall:.1f}x / {cpu / ref_cpu:.1f}x"
        flagged = f"{r['halves'][0]} / {r['halves'][1]}"
        if "score" in r:
            sc = r["score"]
            found, drifted = sum(sc["found"].values()), sum(sc["drifted"].values())
            flagged += f": {found}/{drifted} drifted found, {sc['false_alarms']}/{sc['clean']} FA"
        chunks = (run.get("details") or {}).get("chunks") or "-"
        out.append(
            [
                r["data"],
                f"{chunks} x {r['chunk_size']:,}",
                r["tool"],
                report.fmt_seconds(wall),
                report.fmt_seconds(cpu),
                str(run.get("threads") or "-"),
                ratio,
                flagged,
                note or report.cell_error(run.get("error")),
            ]
        )
    return report.markdown_table(header, out)


def quality_table(small: dict[str, Any]) -> str:
    kinds = ["location", "scale", "tail", "frequency"]
    header = ["tool", "drifted cells found", *kinds, "false alarms (clean cells flagged)"]
    out = []
    for tool, t in small["totals"].items():
        if not t:
            continue
        found, drifted = t.get("found", {}), t.get("drifted", {})
        out.append(
            [
                tool,
                _pct(sum(found.values()), sum(drifted.values())),
                *[_pct(found.get(k, 0), drifted.get(k, 0)) for k in kinds],
                _pct(t.get("false_alarms", 0), t.get("clean", 0)),
            ]
        )
    return report.markdown_table(header, out)


def to_markdown(res: dict[str, Any]) -> str:
    m, cfg, v = res["machine"], res["config"], res["versions"]
    return "\n".join(
        [
            "# Chunked benchmark results",
            "",
            f"Generated {res['generated']} by `python benchmarks/analyze.py`: watchkeeper "
            f"{v.get('watchkeeper')} at {res.get('commit')}, nannyml {v.get('nannyml')}, "
            f"evidently {v.get('evidently')}; {m['cpus']} CPUs, Python {m['python']}, "
            f"1-min load average {m['load_start']} at start, {m['load_end']} at end. "
            f"Evidently's time budget: {cfg['budget']:.0f} s per run.",
            "",
            "## Speed: the same chunks, each tool in its own interpreter",
            "",
            speed_table(res["speed"]),
            "",
            f"## Small chunks: {ad.SMALL_CHUNK:,} rows, controlled shifts",
            "",
            f"{cfg['seeds']} splits of each of NannyML's four datasets (Evidently: "
            f"{cfg['evidently_seeds']}); every tool sees the same chunks.",
            "",
            quality_table(res["small"]),
            "",
        ]
    )


def _commit() -> str:
    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    dirty = " with uncommitted changes in src/" if git("status", "--porcelain", "--", "src") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        load_start = round(os.getloadavg()[0], 2)
        summary = ad.export_nannyml()
        res: dict[str, Any] = {
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": {
                "seeds": args.seeds,
                "evidently_seeds": args.evidently_seeds,
                "budget": args.budget,
                "speed_chunk": SPEED_CHUNK,
            },
            "commit": _commit(),
            "speed": speed(args),
            "small": small_chunks(args, summary),
        }
        versions = {r["tool"]: r["run"].get("version") for r in res["speed"]}
        res["versions"] = versions
        res["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_start": load_start,
            "load_end": round(os.getloadavg()[0], 2),
        }
        res = report.sanitize(res)
        (RESULTS / "analyze.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    markdown = to_markdown(res)
    (RESULTS / "analyze.md").write_text(markdown)
    print(markdown)
    if args.update_docs:
        for page in ("benchmarks.md", "analyze.md"):
            replace_section(REPO / "docs" / page, *MARKERS, markdown)


if __name__ == "__main__":
    sys.exit(main())
