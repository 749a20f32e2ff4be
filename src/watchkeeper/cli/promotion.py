"""Champion and challengers on a running service: ``versions``, ``challenge``, ``promote``,
``rollback``, ``retire``, ``promotion-policy`` and ``verdicts`` (docs/promotion.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli._api import api_options, call
from watchkeeper.cli._output import print_json, when


def _model(model: str) -> str:
    return f"/v1/models/{quote(model, safe='')}"


def _version(model: str, version: str) -> str:
    return f"{_model(model)}/versions/{quote(version, safe='')}"


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print the JSON answer.")(f)


def _states(data: dict[str, Any]) -> None:
    table = Table("version", "state", "mode", "share", "entity key", "since")
    for v in data["versions"]:
        share = f"{v['share']:.0%}" if v.get("share") is not None else ""
        since = when(v["since"]) if v.get("since") else ""
        table.add_row(
            escape(v["version"]), v["state"], v.get("mode") or "", share,
            escape(v.get("entity_key") or ""), since,
        )  # fmt: skip
    Console(highlight=False).print(table)


@click.command("versions")
@click.argument("model")
@api_options
@_json_option
def versions(model: str, url: str, token: str | None, as_json: bool) -> None:
    """MODEL's versions and their states: champion, challenger (shadow or canary), retired."""
    data = call(url, token, "GET", f"{_model(model)}/versions")
    if as_json:
        print_json(data)
        return
    _states(data)
    shadow = data["shadow"]
    click.echo(f"shadow copies: {shadow['scored']} scored, {shadow['dropped']} dropped")


@click.command("challenge")
@click.argument("model")
@click.argument("version")
@click.option("--shadow", "shadow", is_flag=True, help="Score a copy of every request.")
@click.option(
    "--canary",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Answer this share of the requests (0-1).",
)
@click.option("--entity-key", help="The input that keeps an entity on one version (canary).")
@api_options
@_json_option
def challenge(
    model: str,
    version: str,
    shadow: bool,
    canary: float | None,
    entity_key: str | None,
    url: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Make VERSION a challenger of MODEL: --shadow, or --canary SHARE."""
    if shadow == (canary is not None):
        raise click.UsageError("give one of --shadow or --canary SHARE")
    body: dict[str, Any] = {"mode": "shadow" if shadow else "canary"}
    if canary is not None:
        body["share"] = canary
    if entity_key:
        body["entity_key"] = entity_key
    data = call(url, token, "POST", f"{_version(model, version)}/challenge", body)
    if as_json:
        print_json(data)
        return
    what = "in shadow" if shadow else f"as a canary on {canary:.0%} of the requests"
    click.echo(f"{model} {version}: a challenger {what}")


def _swapped(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    click.echo(f"{data['model']}: champion {data['champion']} (was {data['previous']})")


@click.command("promote")
@click.argument("model")
@click.argument("version")
@api_options
@_json_option
def promote(model: str, version: str, url: str, token: str | None, as_json: bool) -> None:
    """Make VERSION the champion of MODEL (the one it replaces is kept for rollback)."""
    _swapped(call(url, token, "POST", f"{_model(model)}/promote", {"version": version}), as_json)


@click.command("rollback")
@click.argument("model")
@api_options
@_json_option
def rollback(model: str, url: str, token: str | None, as_json: bool) -> None:
    """Restore the champion MODEL's current champion replaced."""
    _swapped(call(url, token, "POST", f"{_model(model)}/rollback", {}), as_json)


@click.command("retire")
@click.argument("model")
@click.argument("version")
@api_options
@_json_option
def retire(model: str, version: str, url: str, token: str | None, as_json: bool) -> None:
    """Retire VERSION of MODEL: it answers and shadows nothing more."""
    data = call(url, token, "POST", f"{_version(model, version)}/retire", {})
    if as_json:
        print_json(data)
        return
    click.echo(f"{model} {version}: retired")


@click.command("promotion-policy")
@click.argument("model")
@click.option("--min-labelled", type=int, help="Labelled shadow pairs a verdict needs.")
@click.option("--metric", help="accuracy, f1, roc_auc, mae or rmse.")
@click.option("--alpha", type=float, help="The paired test's level.")
@click.option("--max-latency-ratio", type=float, help="Challenger p95 ≤ this × champion's.")
@click.option("--latency-slack-ms", type=float, help="Or ≤ champion's p95 + this.")
@click.option(
    "--max-error-rate-increase", type=float, help="Challenger errors ≤ champion's + this."
)
@click.option("--mode", help="auto (promote on a verdict) or manual.")
@api_options
@_json_option
def promotion_policy(model: str, url: str, token: str | None, as_json: bool, **given: Any) -> None:
    """Show MODEL's promotion policy; with options, change those fields."""
    path = f"{_model(model)}/promotion-policy"
    changes = {k: v for k, v in given.items() if v is not None}
    if changes:
        current = call(url, token, "GET", path)
        base = current["policy"] if current["configured"] else {}
        data = call(url, token, "PUT", path, {**base, **changes})
    else:
        data = call(url, token, "GET", path)
    if as_json:
        print_json(data)
        return
    note = "" if data["configured"] else " (the defaults: no verdicts until one is set)"
    click.echo(f"{model}'s promotion policy{note}:")
    for key, value in data["policy"].items():
        click.echo(f"  {key}: {value}")


@click.command("verdicts")
@click.argument("model")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@api_options
@_json_option
def verdicts(model: str, limit: int, url: str, token: str | None, as_json: bool) -> None:
    """The verdicts on MODEL's challengers, newest first, with their evidence."""
    data = call(url, token, "GET", f"{_model(model)}/verdicts?limit={limit}")
    if as_json:
        print_json(data)
        return
    table = Table("when", "challenger", "champion", "n", "metric", "difference", "p", "decision")
    for v in data["verdicts"]:
        e = v["evidence"]
        table.add_row(
            when(v["at"]), escape(v["challenger"]), escape(v["champion"]), str(e["n"]),
            f"{e['metric']} {e['challenger']:.4g} vs {e['champion']:.4g}",
            f"{e['difference']:+.4g}", f"{e['p_value']:.3g}", v["decision"],
        )  # fmt: skip
    Console(highlight=False).print(table)
