"""The ``watchkeeper`` command line.

Exit codes: 0 when fine, 1 when a ``--fail-on`` condition trips, 2 with one readable line on
standard error for bad input (missing file, unreadable format, unknown column, bad option).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.progress import output_console

FAIL_ON = ("drift", "dataset-drift", "quality", "performance")


class _Group(click.Group):
    """Bad input (a watchkeeper error, a usage error, an unreadable file) becomes one line on
    standard error and exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:  # --help, --version
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("watchkeeper: aborted", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            click.echo(f"watchkeeper: error: {exc.format_message()}", err=True)
            sys.exit(2)
        except WatchkeeperError as exc:
            click.echo(f"watchkeeper: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            click.echo(f"watchkeeper: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="watchkeeper")
def main() -> None:
    """watchkeeper: ML model monitoring: drift, data quality and performance."""


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


@main.command()
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
    )
    _write(result, output)
    if not quiet:
        console = output_console()
        _print_summary(result, console)
        if output is not None:
            console.print(f"report written to {output}")
    sys.exit(1 if _tripped(result, fail_on) else 0)


def _tripped(result: Any, fail_on: tuple[str, ...]) -> bool:
    checks = {
        # a gate never passes on data it could not check (empty input, missing column)
        "drift": bool(result.drifted_columns) or not result.drift_usable,
        "dataset-drift": bool(result.dataset_drift) or not result.drift_usable,
        "quality": any(
            f.severity in ("warning", "critical") and f.kind != "performance_degraded"
            for f in result.findings
        ),
        "performance": bool(result.performance and result.performance.get("degraded")),
    }
    return any(checks[name] for name in fail_on)


@main.command()
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


@main.group()
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


@main.command()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (.yaml/.json); env WATCHKEEPER_CONFIG.",
)
@click.option("--host", help="Address to bind (default 127.0.0.1; env WATCHKEEPER_HOST).")
@click.option("--port", type=int, help="Port (default 8700; env WATCHKEEPER_PORT).")
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the SQLite state and the Parquet lake live (env WATCHKEEPER_DATA_DIR).",
)
@click.option(
    "--database",
    "database_url",
    help="postgresql://... to keep state in PostgreSQL (env WATCHKEEPER_DATABASE_URL).",
)
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Run the monitoring service (ingest, query API, /metrics)."""
    import uvicorn

    from watchkeeper.alerts.config import alert_config
    from watchkeeper.server.app import create_app
    from watchkeeper.server.launch import DataDirLock, listen
    from watchkeeper.settings import load_settings

    settings = load_settings(
        config, host=host, port=port, data_dir=data_dir, database_url=database_url
    )
    alert_config(settings)  # a bad monitor or notifier is named before anything is claimed
    # the port and the data directory are claimed before anything is written
    sock = listen(settings.host, settings.port)
    lock = DataDirLock(
        settings.data_dir, owner=f"watchkeeper serve on {settings.host}:{settings.port}"
    ).acquire()
    app = create_app(settings)
    click.echo(
        f"watchkeeper {settings.host}:{settings.port}"
        f" · state {settings.sqlalchemy_url.split('@')[-1]}"
        f" · lake {settings.lake_dir}",
        err=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    finally:
        lock.release()


@main.group()
def token() -> None:
    """Create, list and revoke API tokens (stored hashed in the state store)."""


def _store(config: Path | None, data_dir: Path | None, database_url: str | None) -> Any:
    from watchkeeper.settings import load_settings
    from watchkeeper.store.state import Store

    settings = load_settings(config, data_dir=data_dir, database_url=database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.sqlalchemy_url)


_STORE_OPTIONS = [
    click.option(
        "--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file."
    ),
    click.option(
        "--data-dir",
        "data_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="The service's data directory.",
    ),
    click.option("--database", "database_url", help="postgresql://... state store."),
]


def _store_options(f: Any) -> Any:
    for option in reversed(_STORE_OPTIONS):
        f = option(f)
    return f


@token.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    default="ingest,read",
    show_default=True,
    help="Comma-separated: ingest, read, admin.",
)
@_store_options
def token_create(
    name: str, scopes: str, config: Path | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from watchkeeper.store.tokens import create_token

    value = create_token(
        _store(config, data_dir, database_url),
        name,
        [s.strip() for s in scopes.split(",") if s.strip()],
    )
    click.echo(value)


@token.command("list")
@_store_options
def token_list(config: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """List tokens (ids, names, scopes; never the secrets)."""
    from watchkeeper.store.tokens import list_tokens

    for row in list_tokens(_store(config, data_dir, database_url)):
        click.echo(f"{row['id']}  {row['name']}  {','.join(row['scopes'])}")


@token.command("revoke")
@click.argument("token_id")
@_store_options
def token_revoke(
    token_id: str, config: Path | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Revoke a token by its id."""
    from watchkeeper.store.tokens import revoke_token

    revoke_token(_store(config, data_dir, database_url), token_id)
    click.echo(f"revoked {token_id}")


@main.command()
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("watchkeeper-demo"),
    show_default=True,
    help="Demo data directory (an earlier demo's is replaced).",
)
@click.option("--port", type=int, default=8700, show_default=True, help="Port of the demo service.")
@click.option(
    "--hours",
    type=click.IntRange(min=8),
    default=48,
    show_default=True,
    help="Hours of production traffic to replay.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.1),
    default=4.0,
    show_default=True,
    help="Simulated hours replayed per second.",
)
@click.option("--exit", "exit_after", is_flag=True, help="Stop once the replay is evaluated.")
def demo(data_dir: Path, port: int, hours: int, speed: float, exit_after: bool) -> None:
    """Start the service on embedded defaults, register an example model and replay a
    production stream with drift, a quality drop and late labels through the SDK."""
    from watchkeeper.demo import DemoPlan, run_demo

    status = run_demo(
        data_dir,
        port=port,
        plan=DemoPlan(hours=hours),
        hours_per_second=speed,
        keep_serving=not exit_after,
    )
    if not status:
        sys.exit(1)


# ------------------------------------------------------------------ alerts (over the HTTP API)
DEFAULT_URL = "http://127.0.0.1:8700"


class ApiError(WatchkeeperError):
    """The server answered with an error, or could not be reached."""

    exit_code = 2


def _api(
    url: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    *,
    upload: tuple[bytes, str] | None = None,
) -> Any:
    """One request to the service (a JSON ``body``, or an ``upload``: bytes and their content
    type); an error becomes :class:`ApiError` with its message."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    if upload is not None:
        data = upload[0]
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json" if upload is None else upload[1])
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            err = json.loads(text)["error"]
            message = f"{err['status']} {err['type']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}: {' '.join(text.split())[:200]}"
        raise ApiError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(f"cannot reach the service at {url}: {reason}") from None
    return json.loads(raw) if raw else None


_API_OPTIONS = [
    click.option(
        "--url",
        envvar="WATCHKEEPER_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The service (env WATCHKEEPER_URL).",
    ),
    click.option("--token", envvar="WATCHKEEPER_TOKEN", help="API token (env WATCHKEEPER_TOKEN)."),
]


def _api_options(f: Any) -> Any:
    for option in reversed(_API_OPTIONS):
        f = option(f)
    return f


def _as_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def _time(value: float | None) -> str:
    from datetime import UTC, datetime

    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


@main.command()
@click.argument("model")
@click.argument("reference", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--version", "version", default="v1", show_default=True, help="Version name.")
@click.option("--target", help="The ground-truth column of the reference.")
@click.option("--prediction", help="The prediction column of the reference.")
@click.option("--scores", help="Score (probability) columns, comma-separated.")
@click.option("--segments", help="Segment columns, comma-separated (a new model only).")
@click.option(
    "--window-seconds", type=int, help="Evaluation window (a new model only; default 3600)."
)
@click.option(
    "--drift-reference",
    type=click.Choice(["training", "previous_window"]),
    help="What windows drift against (a new model only; default training).",
)
@click.option("--challenger", is_flag=True, help="Register without making it the champion.")
@_api_options
def register(
    model: str,
    reference: Path,
    version: str,
    target: str | None,
    prediction: str | None,
    scores: str | None,
    segments: str | None,
    window_seconds: int | None,
    drift_reference: str | None,
    challenger: bool,
    url: str,
    token: str | None,
) -> None:
    """Register MODEL (if new) and a version with its training REFERENCE (.parquet, .csv or
    .arrow) on a running service."""
    from urllib.parse import quote, urlencode

    from watchkeeper.sdk._client import _REFERENCE_TYPES

    kind = _REFERENCE_TYPES.get(reference.suffix.lower())
    if kind is None:
        raise InputError(f"reference {reference}: expected a .parquet, .csv or .arrow file")
    if not reference.is_file():
        raise InputError(f"reference {reference}: no such file")
    query = {
        k: v
        for k, v in {
            "target": target,
            "prediction": prediction,
            "scores": scores,
            "segments": segments,
            "window_seconds": None if window_seconds is None else str(window_seconds),
            "drift_reference": drift_reference,
            "champion": "false" if challenger else "true",
        }.items()
        if v is not None
    }
    path = f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"
    answer = _api(
        url, token, "PUT", f"{path}?{urlencode(query)}", upload=(reference.read_bytes(), kind)
    )
    roles: dict[str, list[str]] = {}
    for col in answer["schema"]["columns"]:
        roles.setdefault(col["role"], []).append(col["name"])
    click.echo(
        f"registered {model} {version} with a {answer['reference_rows']:,}-row reference"
        + ("" if challenger else " (champion)")
    )
    for role, names in sorted(roles.items()):
        click.echo(f"  {role}: {', '.join(names)}")


@main.group()
def monitors() -> None:
    """List, add and delete monitors on a running service."""


@monitors.command("list")
@_api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def monitors_list(url: str, token: str | None, as_json: bool) -> None:
    """List monitors (settings file and API) with the state of each target."""
    data = _api(url, token, "GET", "/v1/monitors")
    if as_json:
        _as_json(data)
        return
    table = Table("monitor", "source", "model", "metric", "kind", "targets", "open alerts")
    for m in data["monitors"]:
        spec = m["spec"]
        open_alerts = [
            f"{t['alert']['id']} {t['alert']['state']}" for t in m["targets"] if t.get("alert")
        ]
        table.add_row(
            escape(m["name"]),
            m["source"],
            escape(spec["model"]),
            escape(spec["metric"]),
            m["kind"],
            str(len(m["targets"])),
            ", ".join(open_alerts) or "—",
        )
    Console(highlight=False).print(table)


@monitors.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_api_options
def monitors_add(file: Path, url: str, token: str | None) -> None:
    """Create the monitor(s) of FILE (YAML or JSON: one monitor, a list, or `monitors:`)."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{file}: cannot parse: {exc}") from None
    if isinstance(data, dict) and "monitors" in data:
        data = data["monitors"]
    for spec in data if isinstance(data, list) else [data]:
        created = _api(url, token, "POST", "/v1/monitors", spec)
        click.echo(f"created monitor {created['name']}")


@monitors.command("delete")
@click.argument("name")
@_api_options
def monitors_delete(name: str, url: str, token: str | None) -> None:
    """Delete monitor NAME (API monitors only); its open alerts resolve."""
    from urllib.parse import quote

    _api(url, token, "DELETE", f"/v1/monitors/{quote(name, safe='')}")
    click.echo(f"deleted monitor {name}")


@main.group()
def alerts() -> None:
    """List alerts and show one with its history."""


@alerts.command("list")
@_api_options
@click.option("--model", help="Only this model's alerts.")
@click.option(
    "--state",
    type=click.Choice(["open", "pending", "firing", "resolved", "cancelled"]),
    help="Only alerts in this state (open: pending or firing).",
)
@click.option("--monitor", help="Only this monitor's alerts.")
@click.option("--severity", type=click.Choice(["warning", "critical"]), help="Only this severity.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def alerts_list(
    url: str,
    token: str | None,
    model: str | None,
    state: str | None,
    monitor: str | None,
    severity: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Alerts, newest first."""
    from urllib.parse import urlencode

    query = {"model": model, "state": state, "monitor": monitor, "severity": severity}
    params = urlencode({k: v for k, v in {**query, "limit": limit}.items() if v is not None})
    data = _api(url, token, "GET", f"/v1/alerts?{params}")
    if as_json:
        _as_json(data)
        return
    table = Table("id", "state", "severity", "started", "summary")
    for a in data["alerts"]:
        table.add_row(
            str(a["id"]), a["state"], a["severity"], _time(a["started_at"]), escape(a["summary"])
        )
    Console(highlight=False).print(table)


@alerts.command("show")
@click.argument("alert_id", type=int)
@_api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def alerts_show(alert_id: int, url: str, token: str | None, as_json: bool) -> None:
    """One alert: what it says, its history, deliveries and actions."""
    a = _api(url, token, "GET", f"/v1/alerts/{alert_id}")
    if as_json:
        _as_json(a)
        return
    console = Console(highlight=False)
    console.print(f"[bold]alert {a['id']}[/] {a['state']} {a['severity']}: {escape(a['summary'])}")
    for f in a["top_features"][:5]:
        console.print(
            f"  {escape(str(f['feature']))}: {f['statistic']} (threshold {f['threshold']})"
        )
    for h in a["history"]:
        console.print(f"  {_time(h['at'])} {h['state']}: {escape(h['message'])}")
    for d in a["deliveries"]:
        error = f" — {escape(d['last_error'])}" if d["last_error"] else ""
        console.print(
            f"  delivery {d['transition']} → {escape(d['notifier'])}: {d['status']}"
            f" after {d['attempts']} attempt(s){error}"
        )
    for j in a["jobs"]:
        console.print(f"  {j['kind']} job {j['id']}: {j['status']}")


@main.group()
def silence() -> None:
    """Silence the notifications of matching alerts until an expiry."""


@silence.command("add")
@_api_options
@click.option("--monitor", help="Match this monitor (shell patterns work).")
@click.option("--model", help="Match this model (shell patterns work).")
@click.option("--version", "model_version", help="Match this model version.")
@click.option("--segment", help="Match this segment.")
@click.option("--target", help="Match this target (feature).")
@click.option("--severity", type=click.Choice(["warning", "critical"]), help="Match this severity.")
@click.option("--duration", required=True, help="How long: seconds or 30m, 2h, 1d.")
@click.option("--comment", default="", help="Why (kept with the silence).")
@click.option("--created-by", "created_by", default="", help="Who (kept with the silence).")
def silence_add(
    url: str,
    token: str | None,
    monitor: str | None,
    model: str | None,
    model_version: str | None,
    segment: str | None,
    target: str | None,
    severity: str | None,
    duration: str,
    comment: str,
    created_by: str,
) -> None:
    """Create a silence; at least one matcher is needed."""
    given = {
        "monitor": monitor,
        "model": model,
        "version": model_version,
        "segment": segment,
        "target": target,
        "severity": severity,
    }
    matchers = {k: v for k, v in given.items() if v is not None}
    if not matchers:
        raise click.UsageError("give at least one matcher: --monitor, --model, --severity, ...")
    body = {
        "matchers": matchers,
        "duration": duration,
        "comment": comment,
        "created_by": created_by,
    }
    s = _api(url, token, "POST", "/v1/silences", body)
    click.echo(f"silence {s['id']} until {_time(s['expires_at'])} UTC")


@silence.command("list")
@_api_options
@click.option("--all", "show_all", is_flag=True, help="Expired silences too.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def silence_list(url: str, token: str | None, show_all: bool, as_json: bool) -> None:
    """Active silences (with --all, expired ones too)."""
    data = _api(url, token, "GET", "/v1/silences" + ("" if show_all else "?active=true"))
    if as_json:
        _as_json(data)
        return
    table = Table("id", "active", "matchers", "expires", "comment")
    for s in data["silences"]:
        table.add_row(
            str(s["id"]),
            "yes" if s["active"] else "no",
            escape(", ".join(f"{k}={v}" for k, v in s["matchers"].items())),
            _time(s["expires_at"]),
            escape(s["comment"]),
        )
    Console(highlight=False).print(table)


@silence.command("expire")
@click.argument("silence_id", type=int)
@_api_options
def silence_expire(silence_id: int, url: str, token: str | None) -> None:
    """End silence SILENCE_ID now."""
    _api(url, token, "DELETE", f"/v1/silences/{silence_id}")
    click.echo(f"expired silence {silence_id}")


if __name__ == "__main__":  # pragma: no cover
    main()
