"""``watchkeeper audit list|export``: the audit trail of a running service (``GET /v1/audit``,
``GET /v1/audit/export``; the token needs the admin scope)."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli._api import ApiError, api_options, call
from watchkeeper.cli._output import print_json, when


def _time(value: str | None, name: str) -> float | None:
    """Unix seconds, or an ISO 8601 date/time (UTC unless it has an offset)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use ISO 8601 (2026-05-01T12:00, UTC) or Unix seconds", param_hint=name
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _query(
    model: str | None, kinds: tuple[str, ...], since: str | None, until: str | None,
    actor: str | None,
) -> list[tuple[str, str]]:  # fmt: skip
    pairs = [
        ("model", model),
        ("since", _time(since, "--since")),
        ("until", _time(until, "--until")),
    ]
    pairs += [("actor", actor), *(("kind", k) for k in kinds)]
    return [(k, str(v)) for k, v in pairs if v is not None]


def _filters(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--model", help="Only changes of this model."),
            click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable)."),
            click.option("--since", help="From this time on (ISO 8601, UTC, or Unix seconds)."),
            click.option("--until", help="Before this time (ISO 8601, UTC, or Unix seconds)."),
            click.option("--actor", help="Only this actor's changes (a token's name, local)."),
        ]
    ):
        f = option(f)
    return f


@click.group("audit")
def audit() -> None:
    """The audit trail: who changed what, when, from what to what (admin token)."""


@audit.command("list")
@_filters
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def audit_list(
    model: str | None,
    kinds: tuple[str, ...],
    since: str | None,
    until: str | None,
    actor: str | None,
    limit: int,
    url: str,
    token: str | None,
    as_json: bool,
) -> None:
    """The changes recorded, newest first."""
    query = urlencode([*_query(model, kinds, since, until, actor), ("limit", str(limit))])
    data = call(url, token, "GET", f"/v1/audit?{query}")
    if as_json:
        print_json(data)
        return
    table = Table("#", "when", "actor", "kind", "target")
    for e in data["entries"]:
        table.add_row(
            str(e["id"]), when(e["at"]), escape(e["actor"]), e["kind"], escape(e["target"])
        )
    Console(highlight=False).print(table)


@audit.command("export")
@_filters
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON lines or CSV (before and after as JSON text).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (default: standard output).",
)
@api_options
def audit_export(
    model: str | None,
    kinds: tuple[str, ...],
    since: str | None,
    until: str | None,
    actor: str | None,
    fmt: str,
    output: Path | None,
    url: str,
    token: str | None,
) -> None:
    """Every change matching the filters, oldest first."""
    query = urlencode([*_query(model, kinds, since, until, actor), ("format", fmt)])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{url.rstrip('/')}/v1/audit/export?{query}", headers=headers)
    if not url.startswith(("http://", "https://")):
        raise ApiError(f"--url {url!r}: expected http(s)://host[:port]")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            if output is None:
                shutil.copyfileobj(resp, sys.stdout.buffer)
                return
            with output.open("wb") as out:
                shutil.copyfileobj(resp, out)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except OSError as exc:  # URLError, a reset: no answer
        reason = getattr(exc, "reason", exc)
        raise ApiError(f"cannot reach the service at {url}: {reason}") from None
    click.echo(f"wrote {output}", err=True)


def _refusal(exc: urllib.error.HTTPError) -> ApiError:
    """The one line a refused export prints: the status, type and message of its error body."""
    text = exc.read().decode(errors="replace")
    try:
        error = json.loads(text)["error"]
        return ApiError(f"{exc.code} {error['type']}: {error['message']}")
    except (ValueError, KeyError, TypeError):
        return ApiError(f"HTTP {exc.code}: {' '.join(text.split())[:200]}")
