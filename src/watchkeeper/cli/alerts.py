"""``watchkeeper monitors | alerts | silence``: alert rules, alerts and silences on a running
service, over its HTTP API."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli._api import api_options, call
from watchkeeper.cli._output import print_json, when


@click.group()
def monitors() -> None:
    """List, add and delete monitors on a running service."""


@monitors.command("list")
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def monitors_list(url: str, token: str | None, as_json: bool) -> None:
    """List monitors (settings file and API) with the state of each target."""
    data = call(url, token, "GET", "/v1/monitors")
    if as_json:
        print_json(data)
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
@api_options
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
        created = call(url, token, "POST", "/v1/monitors", spec)
        click.echo(f"created monitor {created['name']}")


@monitors.command("delete")
@click.argument("name")
@api_options
def monitors_delete(name: str, url: str, token: str | None) -> None:
    """Delete monitor NAME (API monitors only); its open alerts resolve."""
    from urllib.parse import quote

    call(url, token, "DELETE", f"/v1/monitors/{quote(name, safe='')}")
    click.echo(f"deleted monitor {name}")


@click.group()
def alerts() -> None:
    """List alerts and show one with its history."""


@alerts.command("list")
@api_options
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
    data = call(url, token, "GET", f"/v1/alerts?{params}")
    if as_json:
        print_json(data)
        return
    table = Table("id", "state", "severity", "started", "summary")
    for a in data["alerts"]:
        table.add_row(
            str(a["id"]), a["state"], a["severity"], when(a["started_at"]), escape(a["summary"])
        )
    Console(highlight=False).print(table)


@alerts.command("show")
@click.argument("alert_id", type=int)
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def alerts_show(alert_id: int, url: str, token: str | None, as_json: bool) -> None:
    """One alert: what it says, its history, deliveries and actions."""
    a = call(url, token, "GET", f"/v1/alerts/{alert_id}")
    if as_json:
        print_json(a)
        return
    console = Console(highlight=False)
    console.print(f"[bold]alert {a['id']}[/] {a['state']} {a['severity']}: {escape(a['summary'])}")
    for f in a["top_features"][:5]:
        console.print(
            f"  {escape(str(f['feature']))}: {f['statistic']} (threshold {f['threshold']})"
        )
    for h in a["history"]:
        console.print(f"  {when(h['at'])} {h['state']}: {escape(h['message'])}")
    for d in a["deliveries"]:
        error = f" — {escape(d['last_error'])}" if d["last_error"] else ""
        console.print(
            f"  delivery {d['transition']} → {escape(d['notifier'])}: {d['status']}"
            f" after {d['attempts']} attempt(s){error}"
        )
    for j in a["jobs"]:
        console.print(f"  {j['kind']} job {j['id']}: {j['status']}")


@click.group()
def silence() -> None:
    """Silence the notifications of matching alerts until an expiry."""


@silence.command("add")
@api_options
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
    s = call(url, token, "POST", "/v1/silences", body)
    click.echo(f"silence {s['id']} until {when(s['expires_at'])} UTC")


@silence.command("list")
@api_options
@click.option("--all", "show_all", is_flag=True, help="Expired silences too.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def silence_list(url: str, token: str | None, show_all: bool, as_json: bool) -> None:
    """Active silences (with --all, expired ones too)."""
    data = call(url, token, "GET", "/v1/silences" + ("" if show_all else "?active=true"))
    if as_json:
        print_json(data)
        return
    table = Table("id", "active", "matchers", "expires", "comment")
    for s in data["silences"]:
        table.add_row(
            str(s["id"]),
            "yes" if s["active"] else "no",
            escape(", ".join(f"{k}={v}" for k, v in s["matchers"].items())),
            when(s["expires_at"]),
            escape(s["comment"]),
        )
    Console(highlight=False).print(table)


@silence.command("expire")
@click.argument("silence_id", type=int)
@api_options
def silence_expire(silence_id: int, url: str, token: str | None) -> None:
    """End silence SILENCE_ID now."""
    call(url, token, "DELETE", f"/v1/silences/{silence_id}")
    click.echo(f"expired silence {silence_id}")
