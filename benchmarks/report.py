"""Turn raw per-tool results into the summary, the goal verdicts and the tables."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import SHIFTED_COLUMNS, SHIFTS, column_names

REPO_ROOT = Path(__file__).resolve().parent.parent
WK = "watchkeeper"
SCIPY = "scipy-loop"
FORM_TEXT = {
    "pandas-object": "pandas, object strings",
    "pandas-categorical": "pandas, category",
    "arrow": "pyarrow Table",
}


def form_text(form: str | None) -> str:
    """An input form as the tables show it."""
    return "-" if form is None else FORM_TEXT.get(form, form)


def _base(name: str) -> str:
    """The tool of a result row ("watchkeeper [arrow]" -> "watchkeeper")."""
    return name.split(" [", 1)[0]


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    measured: str
    status: str  # "pass", "fail" or "pending"


def accuracy(flagged: list[str]) -> tuple[list[str], list[str]]:
    """(false alarms on unshifted columns, shifted columns found)."""
    flags = set(flagged)
    false_alarms = sorted(flags - set(SHIFTED_COLUMNS))
    found = [c for c in SHIFTED_COLUMNS if c in flags]
    return false_alarms, found


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize_tool(
    timing_runs: list[dict[str, Any]], seed_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Merge the timing runs (seed 0, each repeat) and the accuracy runs (one per seed).

    Seconds and extra peak memory are medians over the successful repeats; the verdicts
    are those of the first successful repeat.
    """
    ok_timing = [r for r in timing_runs if r.get("error") is None]
    first = ok_timing[0] if ok_timing else timing_runs[0]
    out: dict[str, Any] = {
        "tool": first["tool"],
        "input": first.get("input"),
        "input_dtypes": first.get("input_dtypes"),
        "version": first.get("version"),
        "error": first.get("error"),
        "seconds": _median(ok_timing, "seconds"),
        "seconds_repeats": [r.get("seconds") for r in ok_timing],
        "cpu_seconds": _median(ok_timing, "cpu_seconds"),
        "threads": max((r.get("threads") or 0 for r in ok_timing), default=None) or None,
        "extra_peak_mb": _median(ok_timing, "extra_peak_mb"),
        "extra_peak_mb_repeats": [r.get("extra_peak_mb") for r in ok_timing],
        "rss_after_load_mb": first.get("rss_after_load_mb"),
        "peak_rss_mb": first.get("peak_rss_mb"),
        "flagged": first.get("flagged", []),
    }
    if first.get("error") is None:
        fa, found = accuracy(first.get("flagged", []))
        out.update(false_alarms=fa, shifted_found=found)
    ok = [r for r in seed_runs if r.get("error") is None]
    out["seeds_run"] = len(ok)
    out["seed_errors"] = [r["error"] for r in seed_runs if r.get("error") is not None]
    if ok:
        per_seed = [accuracy(r.get("flagged", [])) for r in ok]
        out["false_alarms_all_seeds"] = sum(len(fa) for fa, _ in per_seed)
        out["shifted_found_all_seeds"] = sum(len(found) for _, found in per_seed)
        out["shifted_possible_all_seeds"] = len(SHIFTED_COLUMNS) * len(ok)
        out["false_alarm_columns_all_seeds"] = sorted({c for fa, _ in per_seed for c in fa})
        out["seconds_median_all_seeds"] = statistics.median(r["seconds"] for r in ok)
    return out


def summarize_profile(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median profiling time over the repeats -> rows/s."""
    ok = [r for r in runs if r.get("error") is None]
    if not ok:
        return {
            "error": runs[0].get("error"),
            "version": runs[0].get("version"),
            "input": runs[0].get("input"),
        }
    seconds = _median(ok, "seconds")
    rows = ok[0]["rows"]
    return {
        "input": ok[0].get("input"),
        "rows": rows,
        "seconds": seconds,
        "seconds_repeats": [r["seconds"] for r in ok],
        "rows_per_s": rows / seconds if seconds else None,
        "extra_peak_mb": _median(ok, "extra_peak_mb"),
        "version": ok[0].get("version"),
        "error": None,
    }


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _same_form(summary: dict[str, dict[str, Any]], tool: str, form: str | None) -> dict[str, Any]:
    """The row of ``tool`` on input ``form`` (empty when it did not run on it)."""
    for name, s in summary.items():
        if _base(name) == tool and s.get("input") == form:
            return s
    return {}


def form_ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The scipy loop's time over watchkeeper's, per input form both ran on (extra rows)."""
    out = {}
    for name, s in summary.items():
        if _base(name) == SCIPY and name != SCIPY:
            wk = _same_form(summary, WK, s.get("input"))
            out[str(s.get("input"))] = _ratio(s.get("seconds"), wk.get("seconds"))
    return out


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    wk = summary.get(WK, {})
    scipy = summary.get(SCIPY, {})
    ev = summary.get("evidently", {})
    return {
        "speedup_vs_scipy_loop": _ratio(scipy.get("seconds"), wk.get("seconds")),
        # Both run on every accuracy seed: the median over seeds is the steadier figure.
        "speedup_vs_scipy_loop_median_seeds": _ratio(
            scipy.get("seconds_median_all_seeds"), wk.get("seconds_median_all_seeds")
        ),
        "speedup_vs_evidently": _ratio(ev.get("seconds"), wk.get("seconds")),
        "memory_ratio_vs_evidently": _ratio(wk.get("extra_peak_mb"), ev.get("extra_peak_mb")),
        **{f"speedup_vs_scipy_loop_{form}": x for form, x in form_ratios(summary).items()},
    }


def _verdict(ok: bool | None, missing: str = "pending") -> str:
    """pass/fail; ``missing`` when the figure could not be measured."""
    return missing if ok is None else ("pass" if ok else "fail")


def _fmt_x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def goals(
    summary: dict[str, dict[str, Any]], profile: dict[str, dict[str, Any]], seeds: int
) -> list[Goal]:
    r = ratios(summary)
    wk = summary.get(WK, {})
    # A ratio is "pending" while watchkeeper's own figure is missing, "n/a" when the peer
    # was not run or failed.
    peer_missing = "pending" if wk.get("seconds") is None else "n/a"
    out = []
    s = r["speedup_vs_scipy_loop"]
    out.append(
        Goal(
            "faster than the scipy loop",
            ">= 5x",
            _fmt_x(s),
            _verdict(None if s is None else s >= 5, peer_missing),
        )
    )
    for name, s in summary.items():
        if _base(name) == SCIPY and name != SCIPY:
            x = r.get(f"speedup_vs_scipy_loop_{s.get('input')}")
            out.append(
                Goal(
                    f"faster than the scipy loop, both on {form_text(s.get('input'))}",
                    ">= 5x",
                    _fmt_x(x),
                    _verdict(None if x is None else x >= 5, "n/a"),
                )
            )
    sm = r["speedup_vs_scipy_loop_median_seeds"]
    n_med = min(wk.get("seeds_run", 0), summary.get("scipy-loop", {}).get("seeds_run", 0))
    if sm is not None and n_med > 1:
        out.append(
            Goal(
                f"faster than the scipy loop, median of {n_med} seeds",
                ">= 5x",
                _fmt_x(sm),
                _verdict(sm >= 5),
            )
        )
    e = r["speedup_vs_evidently"]
    out.append(
        Goal(
            "faster than Evidently",
            ">= 100x",
            _fmt_x(e),
            _verdict(None if e is None else e >= 100, peer_missing),
        )
    )
    m = r["memory_ratio_vs_evidently"]
    mem = "n/a" if m is None else f"{m:.3f} of Evidently's"
    out.append(
        Goal(
            "extra peak memory",
            "<= 1/10 of Evidently's",
            mem,
            _verdict(None if m is None else m <= 0.1, peer_missing),
        )
    )
    if wk.get("seeds_run"):
        fa = wk["false_alarms_all_seeds"]
        found, possible = wk["shifted_found_all_seeds"], wk["shifted_possible_all_seeds"]
        n = wk["seeds_run"]
        # A miss on the seeds that ran is a fail; a clean record on fewer seeds than asked
        # for (some runs errored) is only "pending".
        complete = n >= seeds
        fa_ok = False if fa else (True if complete else None)
        found_ok = False if found < possible else (True if complete else None)
        out.append(Goal(f"false alarms, {n} of {seeds} seeds", "0", str(fa), _verdict(fa_ok)))
        out.append(
            Goal(
                f"shifted columns found, {n} of {seeds} seeds",
                "all",
                f"{found}/{possible}",
                _verdict(found_ok),
            )
        )
    else:
        out.append(Goal("false alarms over seeds", "0", "n/a", "pending"))
        out.append(Goal("shifted columns found over seeds", "all", "n/a", "pending"))
    rps = profile.get(WK, {}).get("rows_per_s")
    out.append(
        Goal(
            "profiling throughput",
            ">= 1M rows/s",
            "n/a" if rps is None else f"{rps:,.0f} rows/s",
            _verdict(None if rps is None else rps >= 1_000_000),
        )
    )
    return out


# ---------------------------------------------------------------- formatting


def fmt_seconds(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_mb(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def cell_error(error: str | None, limit: int = 90) -> str:
    if not error:
        return ""
    text = error.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_lines(res: dict[str, Any]) -> list[str]:
    """One line per failed tool run: 'tool (mode, seed s): message'."""
    seen = set()
    out = []
    for r in res["runs"]:
        if r.get("error") and (r["tool"], r["mode"], r["error"]) not in seen:
            seen.add((r["tool"], r["mode"], r["error"]))
            out.append(
                f"{r['tool']} ({r['mode']}, seed {r['seed']}): {cell_error(r['error'], 300)}"
            )
    return out


def main_rows(summary: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows of the main table, shared by the rich and the markdown output."""
    rows = []
    for name, s in summary.items():
        err = s.get("error")
        ok = err is None
        # against watchkeeper on the same input form (the headline's for the peers)
        wk = _same_form(summary, WK, s.get("input")) or summary.get(WK, {})
        x_wk = _ratio(s.get("seconds"), wk.get("seconds")) if _base(name) != WK else None
        fa = s.get("false_alarms")
        found = s.get("shifted_found")
        seeds = s.get("seeds_run", 0)
        acc = "-"
        if seeds:
            acc = (
                f"{s['false_alarms_all_seeds']} FA, "
                f"{s['shifted_found_all_seeds']}/{s['shifted_possible_all_seeds']} found, "
                f"{seeds} seed{'s' if seeds > 1 else ''}"
            )
        rows.append(
            [
                name,
                form_text(s.get("input")),
                s.get("version") or "-",
                fmt_seconds(s.get("seconds")) if ok else "-",
                fmt_seconds(s.get("cpu_seconds")) if ok and s.get("cpu_seconds") else "-",
                str(s.get("threads") or "-") if ok else "-",
                "-" if x_wk is None else f"{x_wk:,.1f}x",
                fmt_mb(s.get("extra_peak_mb")) if ok else "-",
                str(len(s.get("flagged", []))) if ok else "-",
                "-" if fa is None else str(len(fa)),
                "-" if found is None else f"{len(found)}/{len(SHIFTED_COLUMNS)}",
                acc if ok else ("pending (error below)" if name == WK else "error (below)"),
            ]
        )
    return rows


MAIN_HEADER = [
    "tool",
    "input",
    "version",
    "seconds",
    "CPU s",
    "threads",
    "time / watchkeeper's",
    "extra peak MB",
    "flagged",
    "false alarms (of 19)",
    "shifted found",
    "over seeds",
]


def verdict_matrix(summary: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Column x tool table of seed-0 verdicts (X = flagged), the headline rows only."""
    tools = [n for n, s in summary.items() if s.get("error") is None and _base(n) == n]
    shifts = {s.column: s.description for s in SHIFTS}
    header = ["column", "shift", *tools]
    rows = []
    for col in column_names():
        marks = ["X" if col in summary[t].get("flagged", []) else "." for t in tools]
        rows.append([col, shifts.get(col, "none"), *marks])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def sanitize(value: Any) -> Any:
    """Strip this machine's absolute paths from strings bound for committed files."""
    if isinstance(value, str):
        for prefix, label in (
            (str(REPO_ROOT), "<repo>"),
            (sys.prefix, "<venv>"),
            (sys.base_prefix, "<python>"),
        ):
            value = value.replace(prefix, label)
        return value
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value
