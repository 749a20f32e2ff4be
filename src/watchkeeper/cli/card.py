"""``watchkeeper model-card MODEL [VERSION]``: a version's model card from a running service
(``GET /v1/models/{model}/card``), written as one self-contained HTML page or as Markdown."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import click

from watchkeeper.card import to_html, to_markdown
from watchkeeper.cli._api import api_options, call
from watchkeeper.cli._output import print_json
from watchkeeper.errors import InputError

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


@click.command("model-card")
@click.argument("model")
@click.argument("version", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the card here: .html (one self-contained, printable page) or .md. "
    "Without it the Markdown goes to standard output.",
)
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service answered.")
def model_card(
    model: str,
    version: str | None,
    output: Path | None,
    url: str,
    token: str | None,
    as_json: bool,
) -> None:
    """VERSION's model card (default: MODEL's champion): description, owner and intended use,
    training reference, performance (realized and estimated), drift and alerts, failing
    slices, attributions, and retraining and promotion lineage."""
    kind = "markdown"
    if output is not None:
        found = FORMATS.get(output.suffix.lower())
        if found is None:
            raise InputError(
                f"--output {str(output)!r}: name a .html or .md file (known: {', '.join(FORMATS)})"
            )
        kind = found
    query = "" if version is None else "?" + urlencode({"version": version})
    data = call(url, token, "GET", f"/v1/models/{quote(model, safe='')}/card{query}")
    if as_json:
        print_json(data)
        return
    text = to_html(data) if kind == "html" else to_markdown(data)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote the model card of {model} {data['version']} to {output}")
