"""``watchkeeper analyze``: a whole period against a reference, chunk by chunk, with no service.

Exit codes as for ``report``: 0 when fine, 1 when a ``--fail-on`` condition trips in any
chunk, 2 for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli.report import FAIL_ON, MULTIVARIATE, _tripped
from watchkeeper.progress import output_console


def _print_summary(timeline: Any, tripped: list[str]) -> None:
    console = output_console()
    table = Table("chunk", "rows", "drifted", "dataset drift", "performance")
    table.columns[0].overflow = "fold"
    for chunk, report in zip(timeline.chunks, timeline.reports, strict=True):
        s = report.summary()
        perf = report.performance or {}
        h = perf.get("headline")
        value = ((perf.get("current") or {}).get(h) or {}).get("value") if h else None
        table.add_row(
            escape(chunk.key),
            f"{chunk.rows:,}",
            f"{s['n_drifted']} of {s['columns_checked']}"
            + (f": {escape(', '.join(s['drifted_columns'][:4]))}" if s["drifted_columns"] else ""),
            "[red]yes[/]" if s["dataset_drift"] else "no",
            "—"
            if value is None
            else f"{h} {value:.4f}" + (" [red]worse[/]" if perf.get("degraded") else ""),
        )
    console.print(table)
    if tripped:
        console.print(
            f"--fail-on tripped in {len(tripped)} chunk(s): {escape(', '.join(tripped[:10]))}"
        )


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("data")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Rows per chunk, in row order.")
@click.option(
    "--chunk-period", help="A calendar period per chunk: 1D, 6h, W, M … (needs --timestamp)."
)
@click.option("--chunk-number", type=click.IntRange(min=1), help="This many chunks of equal size.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the timeline: .html (self-contained) or .json.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the timeline as JSON here.",
)
@click.option("--target", help="Ground-truth column.")
@click.option("--prediction", help="Prediction column (label or number).")
@click.option("--score", "scores", multiple=True, help="Prediction score / probability column(s).")
@click.option("--timestamp", help="Timestamp column (orders the reference; cuts periods).")
@click.option("--column", "columns", multiple=True, help="Check only these columns for drift.")
@click.option("--method", help="Drift method for every column it applies to (e.g. ks, psi).")
@click.option(
    "--false-alarm-rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Per-column false-alarm rate (calibrated).",
)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    type=click.Choice(FAIL_ON),
    help="Exit 1 when this happens in any chunk (repeatable).",
)
@click.option(
    "--multivariate",
    type=click.Choice(MULTIVARIATE),
    help="Joint-distribution checks of the input features [default: pca].",
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def analyze(
    reference: Path,
    data: str,
    chunk_size: int | None,
    chunk_period: str | None,
    chunk_number: int | None,
    output: Path | None,
    json_path: Path | None,
    target: str | None,
    prediction: str | None,
    scores: tuple[str, ...],
    timestamp: str | None,
    columns: tuple[str, ...],
    method: str | None,
    false_alarm_rate: float,
    fail_on: tuple[str, ...],
    multivariate: str | None,
    quiet: bool,
) -> None:
    """Compare DATA with REFERENCE chunk by chunk (files: Parquet, CSV or Arrow; REFERENCE
    may also be a directory written by ``Reference.save``). DATA may be a file, a directory
    of files or a quoted glob ("events/*.parquet"): it is read batch by batch, one chunk in
    memory at a time."""
    from watchkeeper.reference import Reference

    given = [
        o
        for o, v in (
            ("--chunk-size", chunk_size),
            ("--chunk-period", chunk_period),
            ("--chunk-number", chunk_number),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --chunk-size, --chunk-period, --chunk-number")
    if output is not None and output.suffix.lower() not in (".json", ".html", ".htm"):
        raise click.UsageError(f"-o {output}: use a .html or .json file name")
    if json_path is not None and json_path.suffix.lower() != ".json":
        raise click.UsageError(f"--json {json_path}: use a .json file name")
    if reference.is_dir():
        if any((target, prediction, scores, timestamp, columns, method, multivariate)):
            raise click.UsageError(
                f"{reference} is a saved reference: its options were fixed when it was fitted"
            )
        ref = Reference.load(reference)
    else:
        ref = Reference.fit(
            reference,
            target=target,
            prediction=prediction,
            scores=list(scores) or None,
            columns=list(columns) or None,
            method=method,
            false_alarm_rate=false_alarm_rate,
            timestamp=timestamp,
            multivariate=multivariate or "pca",
        )
    timeline = ref.analyze(
        data, chunk_size=chunk_size, chunk_period=chunk_period, chunk_number=chunk_number
    )
    if output is not None:
        if output.suffix.lower() == ".json":
            timeline.save_json(output)
        else:
            timeline.save_html(output)
    if json_path is not None:
        timeline.save_json(json_path)
    tripped = [
        c.key
        for c, r in zip(timeline.chunks, timeline.reports, strict=True)
        if _tripped(r, fail_on)
    ]
    if not quiet:
        _print_summary(timeline, tripped)
        for path in (output, json_path):
            if path is not None:
                output_console().print(f"timeline written to {path}")
    sys.exit(1 if tripped else 0)
