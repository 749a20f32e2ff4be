"""``watchkeeper report | example | schema``: the batch report on files, with no service.

Exit codes: 0 when fine, 1 when a ``--fail-on`` condition trips, 2 for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.progress import output_console

FAIL_ON = ("drift", "dataset-drift", "quality", "performance", "multivariate")
MULTIVARIATE = ("pca", "classifier", "all", "none")


def _print_summary(report: Any, console: Console, limit: int = 15) -> None:
    s = report.summary()
    console.print(
        f"[bold]{s['n_drifted']}[/] of {s['columns_checked']} columns drifted "
        f"({s['drift_share']:.0%}); dataset drift: [bold]{'yes' if s['dataset_drift'] else 'no'}[/]"
        f"  · decision: {report.settings['decision']}"
        f" (false-alarm rate {report.settings['false_alarm_rate']:g} per column)"
    )
    by_reason: dict[str, list[str]] = {}
    for name, why in report.unchecked.items():
        by_reason.setdefault(why, []).append(escape(name))
    for why, names in by_reason.items():
        console.print(f"[yellow]drift not checked[/] ({why}): {', '.join(names)}")
    table = Table("column", "type", "method", "statistic", "threshold", "drifted", "effect")
    table.columns[0].overflow = "fold"  # a long name wraps in its cell, never cut
    for column in table.columns[1:]:
        column.no_wrap, column.min_width = True, len(str(column.header))
    for d in list(report.drift.values())[:limit]:
        cells = (
            d.type,
            d.method,
            "—" if d.statistic is None else f"{d.statistic:.4g}",
            "—" if d.threshold is None else f"{d.threshold:.4g}",
            "yes" if d.drifted else "no",
            "—" if d.effect_size is None else f"{d.effect_size:.3f}",
        )
        for column, cell in zip(table.columns[1:], cells, strict=True):
            column.min_width = max(column.min_width or 0, len(cell))
        table.add_row(escape(d.column), *cells[:4], "[red]yes[/]" if d.drifted else "no", cells[5])
    console.print(table)
    if len(report.drift) > limit:
        console.print(f"… and {len(report.drift) - limit} more columns")
    joint = report.multivariate_drift
    if joint is not None:
        parts = [
            f"{name} {r.statistic:.4g} (threshold {r.threshold:.4g})"
            for name, r in joint.results.items()
            if r.statistic is not None and r.threshold is not None
        ]
        notes = {r.note for r in joint.results.values() if r.note}
        verdict = f"[red]{escape(joint.message)}[/]" if joint.drifted else escape(joint.message)
        detail = "; ".join(parts) or "; ".join(sorted(notes))
        console.print(f"joint distribution: {verdict} ({escape(detail)})", highlight=False)
    notable = [f for f in report.findings if f.severity != "info"]
    for f in notable[:10]:
        console.print(f"[yellow]{f.severity}[/] {escape(f.message)}", highlight=False)
    if len(notable) > 10:
        console.print(f"… and {len(notable) - 10} more findings in the report")
    perf = report.performance
    if perf and perf.get("current"):
        headline = perf.get("headline")
        if headline:
            ref_v = (perf.get("reference") or {}).get(headline, {}) or {}
            cur_v = perf["current"].get(headline, {}) or {}
            console.print(
                f"performance ({perf['task']}): {headline} "
                f"{_fmt(ref_v.get('value'))} → {_fmt(cur_v.get('value'))}"
            )


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _write(report: Any, output: Path | None) -> None:
    if output is None:
        return
    if output.suffix.lower() == ".json":
        report.save_json(output)
    elif output.suffix.lower() in (".html", ".htm"):
        report.save_html(output)
    else:
        raise click.UsageError(f"-o {output}: use a .html or .json file name")


@click.command()
@click.argument("reference", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("current", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report: .html (self-contained) or .json.",
)
@click.option("--target", help="Ground-truth column.")
@click.option("--prediction", help="Prediction column (label or number).")
@click.option("--score", "scores", multiple=True, help="Prediction score / probability column(s).")
@click.option("--timestamp", help="Timestamp column (orders the reference in time).")
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Schema file (.json/.yaml) instead of inference.",
)
@click.option("--column", "columns", multiple=True, help="Check only these columns for drift.")
@click.option("--method", help="Drift method for every column it applies to (e.g. ks, psi).")
@click.option(
    "--decision",
    type=click.Choice(["calibrated", "p_value", "threshold"]),
    default="calibrated",
    show_default=True,
)
@click.option(
    "--false-alarm-rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Per-column false-alarm rate (calibrated).",
)
@click.option("--threshold", type=float, help="Fixed threshold (threshold / p_value decisions).")
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    type=click.Choice(FAIL_ON),
    help="Exit 1 when this happens (repeatable).",
)
@click.option(
    "--multivariate",
    type=click.Choice(MULTIVARIATE),
    default="pca",
    show_default=True,
    help="Joint-distribution checks of the input features (docs/multivariate.md).",
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def report(
    reference: Path,
    current: Path,
    output: Path | None,
    target: str | None,
    prediction: str | None,
    scores: tuple[str, ...],
    timestamp: str | None,
    schema_path: Path | None,
    columns: tuple[str, ...],
    method: str | None,
    decision: str,
    false_alarm_rate: float,
    threshold: float | None,
    fail_on: tuple[str, ...],
    multivariate: str,
    quiet: bool,
) -> None:
    """Compare CURRENT data with REFERENCE data (Parquet, CSV or Arrow files)."""
    from watchkeeper.report import compare
    from watchkeeper.schema import Schema
    from watchkeeper.stats.drift import CATEGORICAL_METHODS, NUMERIC_METHODS

    if output is not None and output.suffix.lower() not in (".json", ".html", ".htm"):
        raise click.UsageError(f"-o {output}: use a .html or .json file name")
    schema = Schema.load(schema_path) if schema_path is not None else None
    thresholds = None
    if threshold is not None:
        thresholds = dict.fromkeys((*NUMERIC_METHODS, *CATEGORICAL_METHODS), threshold)
    if threshold is not None and decision == "calibrated":
        raise click.UsageError(
            "--threshold needs --decision threshold or --decision p_value; "
            "the calibrated decision sets its own thresholds (see --false-alarm-rate)"
        )
    result = compare(
        reference,
        current,
        target=target,
        prediction=prediction,
        scores=list(scores) or None,
        schema=schema,
        columns=list(columns) or None,
        method=method,
        decision=decision,
        false_alarm_rate=false_alarm_rate,
        thresholds=thresholds,
        timestamp=timestamp,
        progress=None if not quiet else False,
        multivariate=multivariate,
    )
    _write(result, output)
    if not quiet:
        console = output_console()
        _print_summary(result, console)
        if output is not None:
            console.print(f"report written to {output}")
    sys.exit(1 if _tripped(result, fail_on) else 0)


# findings about the model, not the data: the quality gate leaves them to --fail-on performance
PERFORMANCE_FINDINGS = {
    "performance_degraded",
    "estimate_disagrees",
    "estimated_performance_degraded",
}


def _tripped(result: Any, fail_on: tuple[str, ...]) -> bool:
    checks = {
        # a gate never passes on data it could not check (empty input, missing column)
        "drift": bool(result.drifted_columns) or not result.drift_usable,
        "dataset-drift": bool(result.dataset_drift) or not result.drift_usable,
        "quality": any(
            f.severity in ("warning", "critical") and f.kind not in PERFORMANCE_FINDINGS
            for f in result.findings
        ),
        "performance": bool(result.performance and result.performance.get("degraded")),
        "multivariate": bool(result.multivariate_drift and result.multivariate_drift.drifted),
    }
    return any(checks[name] for name in fail_on)


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("watchkeeper-example"),
    show_default=True,
    help="Directory for the example data and report.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=100),
    default=50_000,
    show_default=True,
    help="Reference rows (the current window has 40 % as many).",
)
def example(out_dir: Path, rows: int) -> None:
    """Generate example reference/current data with a known drift, write an HTML and a JSON
    report, and print a summary."""
    import pyarrow.parquet as pq

    from watchkeeper.examples import DRIFTED, churn_example
    from watchkeeper.report import compare

    console = output_console()
    out_dir.mkdir(parents=True, exist_ok=True)
    ref, cur = churn_example(reference_rows=rows, current_rows=max(rows * 2 // 5, 50))
    pq.write_table(ref, out_dir / "reference.parquet")
    pq.write_table(cur, out_dir / "current.parquet")
    console.print(
        f"example data: {out_dir / 'reference.parquet'} ({ref.num_rows:,} rows), "
        f"{out_dir / 'current.parquet'} ({cur.num_rows:,} rows)"
    )
    console.print(
        f"drift built into the current data: {', '.join(DRIFTED)}; the model's accuracy drops too"
    )
    result = compare(
        ref,
        cur,
        target="churned",
        prediction="churn_predicted",
        scores=["churn_score"],
        timestamp="event_time",
    )
    result.save_html(out_dir / "report.html")
    result.save_json(out_dir / "report.json")
    _print_summary(result, console)
    console.print(f"HTML report: {out_dir / 'report.html'}   JSON: {out_dir / 'report.json'}")
    console.print(
        "the same from the command line: "
        f"watchkeeper report {out_dir / 'reference.parquet'} {out_dir / 'current.parquet'}"
        " --target churned --prediction churn_predicted --score churn_score"
        " --timestamp event_time -o report.html"
    )


@click.group()
def schema() -> None:
    """Infer and inspect schemas."""


@schema.command("infer")
@click.argument("data", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to .json/.yaml (default: YAML on standard output).",
)
@click.option("--target", help="Ground-truth column.")
@click.option("--prediction", help="Prediction column.")
def schema_infer(
    data: Path, output: Path | None, target: str | None, prediction: str | None
) -> None:
    """Infer a schema from DATA; edit it and pass it to `report --schema`."""
    from watchkeeper.io import to_table
    from watchkeeper.schema import infer_schema

    inferred = infer_schema(to_table(data), target=target, prediction=prediction)
    if output is None:
        click.echo(inferred.to_yaml())
    else:
        inferred.save(output)
        click.echo(f"schema written to {output}")
