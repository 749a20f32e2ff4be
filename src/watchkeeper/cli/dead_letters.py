"""``watchkeeper dead-letters``: the batches a running service's processor could not process
(``GET /v1/models/{model}/dead-letters``): list them, replay them once the cause is fixed, or
delete them."""

from __future__ import annotations

from urllib.parse import quote

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchkeeper.cli._api import api_options, call
from watchkeeper.cli._output import print_json, when


def _path(model: str, *rest: object) -> str:
    return "/".join([f"/v1/models/{quote(model, safe='')}/dead-letters", *map(str, rest)])


@click.group("dead-letters")
def dead_letters() -> None:
    """List, replay and delete the batches the processor could not process."""


@dead_letters.command("list")
@click.argument("model")
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def dead_letters_list(model: str, url: str, token: str | None, as_json: bool) -> None:
    """MODEL's dead-lettered batches with their last error, oldest first."""
    data = call(url, token, "GET", _path(model) + "?limit=10000")
    if as_json:
        print_json(data)
        return
    table = Table("id", "version", "events", "attempts", "dead since", "error")
    for item in data["items"]:
        table.add_row(
            str(item["id"]),
            escape(item["version"]),
            str(item["events"]),
            str(item["attempts"]),
            when(item["dead_at"]),
            escape(item["error"].splitlines()[0] if item["error"] else ""),
        )
    Console(highlight=False).print(table)


def _ids(url: str, token: str | None, model: str, ids: tuple[int, ...], every: bool) -> list[int]:
    if every == bool(ids):
        raise click.UsageError("give dead letter ids or --all, not both")
    if ids:
        return list(ids)
    return [i["id"] for i in call(url, token, "GET", _path(model) + "?limit=10000")["items"]]


@dead_letters.command("replay")
@click.argument("model")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every dead letter of MODEL.")
@api_options
def dead_letters_replay(
    model: str, ids: tuple[int, ...], every: bool, url: str, token: str | None
) -> None:
    """Log the batches IDS (or --all) of MODEL again for the processor, once what made them
    fail is fixed; a batch that still fails comes back."""
    for dead_id in _ids(url, token, model, ids, every):
        done = call(url, token, "POST", _path(model, dead_id, "replay"))
        click.echo(f"replayed dead letter {dead_id}: {done['events']} events logged again")


@dead_letters.command("delete")
@click.argument("model")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every dead letter of MODEL.")
@api_options
def dead_letters_delete(
    model: str, ids: tuple[int, ...], every: bool, url: str, token: str | None
) -> None:
    """Drop the batches IDS (or --all) of MODEL and their events for good."""
    for dead_id in _ids(url, token, model, ids, every):
        call(url, token, "DELETE", _path(model, dead_id))
        click.echo(f"deleted dead letter {dead_id}")
