"""``watchkeeper history MODEL``: every step of a model's life on a running service
(``GET /v1/models/{model}/history``), newest first."""

from __future__ import annotations

from urllib.parse import quote

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli._api import api_options, call
from watchkeeper.cli._output import print_json, when


@click.command("history")
@click.argument("model")
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable): alert_firing.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def history(
    model: str, kinds: tuple[str, ...], limit: int, url: str, token: str | None, as_json: bool
) -> None:
    """MODEL's history, newest first: versions registered, alert state changes, and the
    retraining jobs and webhooks the alerts started."""
    query = "&".join([f"limit={limit}", *(f"kind={quote(k)}" for k in kinds)])
    data = call(url, token, "GET", f"/v1/models/{quote(model, safe='')}/history?{query}")
    if as_json:
        print_json(data)
        return
    table = Table("when", "event", "version", "what")
    for e in data["events"]:
        table.add_row(when(e["at"]), e["kind"], escape(e["version"]), escape(e["summary"]))
    Console(highlight=False).print(table)
