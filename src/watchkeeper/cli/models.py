"""``watchkeeper register``: a model version and its training reference, on a running
service (through :func:`watchkeeper.sdk.register`); ``watchkeeper constraints suggest``: its
validation rules, proposed from the reference (:mod:`watchkeeper.constraints`)."""

from __future__ import annotations

from pathlib import Path

import click

from watchkeeper.cli._api import api_error, api_options
from watchkeeper.cli.serving import artifact_options, attach_or_fail, describe
from watchkeeper.errors import InputError
from watchkeeper.sdk import RequestError
from watchkeeper.sdk import register as register_version


@click.command()
@click.argument("model")
@click.argument("reference", type=click.Path(path_type=Path))
@click.option("--version", "version", default="v1", show_default=True, help="Version name.")
@click.option("--target", help="The ground-truth column of the reference.")
@click.option("--prediction", help="The prediction column of the reference.")
@click.option("--scores", help="Score (probability) columns, comma-separated.")
@click.option("--segments", help="Segment columns, comma-separated (a new model only).")
@click.option(
    "--feature",
    "features",
    multiple=True,
    help="Monitor this column as a feature (repeatable; or comma-separated).",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    help="Leave this column out of monitoring (repeatable; or comma-separated).",
)
@click.option(
    "--window-seconds", type=int, help="Evaluation window (a new model only; default 3600)."
)
@click.option(
    "--drift-reference",
    type=click.Choice(["training", "previous_window"]),
    help="What windows drift against (a new model only; default training).",
)
@click.option("--challenger", is_flag=True, help="Register without making it the champion.")
@click.option(
    "--constraints",
    help="Validation rules: a JSON file (watchkeeper's or a Great Expectations suite), or "
    "'suggest' to propose them from the reference.",
)
@click.option(
    "--on-violation",
    type=click.Choice(["quarantine", "count"]),
    help="What a rule violation does: reject the event (default) or accept and count it.",
)
@click.option("--description", help="What the version is (its model card).")
@click.option("--owner", help="Who answers for the version (its model card).")
@click.option("--intended-use", help="What the version is meant for, and not (its model card).")
@click.option(
    "--artifact",
    help="The version's model to serve: a .onnx or .skops file (a pickle with "
    "--trust-pickle) or an MLflow URI (models:/name@alias, runs:/<id>/model).",
)
@artifact_options
@api_options
def register(
    model: str,
    reference: Path,
    version: str,
    target: str | None,
    prediction: str | None,
    scores: str | None,
    segments: str | None,
    features: tuple[str, ...],
    ignore: tuple[str, ...],
    window_seconds: int | None,
    drift_reference: str | None,
    challenger: bool,
    constraints: str | None,
    on_violation: str | None,
    description: str | None,
    owner: str | None,
    intended_use: str | None,
    artifact: str | None,
    artifact_format: str | None,
    inputs: str | None,
    trust_types: tuple[str, ...],
    trust_pickle: bool,
    url: str,
    token: str | None,
) -> None:
    """Register MODEL (if new) and a version with its training REFERENCE (.parquet, .csv or
    .arrow, or a directory written by Reference.save: the version gets its schema as fitted)
    on a running service."""
    try:
        answer = register_version(
            url,
            model,
            reference,
            token=token,
            version=version,
            target=target,
            prediction=prediction,
            scores=_names(scores),
            segments=_names(segments),
            features=_many(features),
            ignore=_many(ignore),
            window_seconds=window_seconds,
            drift_reference=drift_reference,
            champion=not challenger,
            constraints=constraints,
            on_violation=on_violation,
            card={
                k: v
                for k, v in (
                    ("description", description),
                    ("owner", owner),
                    ("intended_use", intended_use),
                )
                if v is not None
            },
        )
    except (RequestError, ConnectionError) as exc:
        raise api_error(exc) from None
    except (FileNotFoundError, ValueError) as exc:  # no such file, not a reference, bad --url
        raise InputError(str(exc)) from None
    click.echo(
        f"registered {model} {version} with a {answer['reference_rows']:,}-row reference"
        + ("" if challenger else " (champion)")
    )
    if answer.get("roles"):  # an older service does not say
        _print_roles(answer["roles"])
    if artifact is not None:  # after the version exists: a refused artifact leaves it unserved
        info = attach_or_fail(
            url,
            token,
            model,
            version,
            artifact=artifact,
            artifact_format=artifact_format,
            inputs=_names(inputs),
            trusted_types=list(trust_types) or None,
            trust_pickle=trust_pickle,
        )
        click.echo(describe(info))


def _print_roles(roles: list[dict[str, str]]) -> None:
    """The columns' roles as the service inferred and applied them, and why."""
    from rich.table import Table

    from watchkeeper.progress import output_console

    table = Table("column", "role", "type", "why", box=None, pad_edge=False)
    for col in roles:
        table.add_row(col["name"], col["role"], col["type"], col["reason"])
    console = output_console()
    console.print(table)
    console.print(
        "to change a role, register a new --version with --feature COLUMN, --ignore COLUMN, "
        "--scores, --target or --prediction"
    )


def _many(values: tuple[str, ...]) -> list[str] | None:
    """A repeatable option, each value one name or several comma-separated."""
    return [name for value in values for name in value.split(",")] or None


def _names(value: str | None) -> list[str] | None:
    """A comma-separated option as the list the SDK takes (sent joined by commas again)."""
    return None if value is None else value.split(",")


@click.group("constraints")
def constraints_group() -> None:
    """Validation rules: propose them from a reference."""


@constraints_group.command("suggest")
@click.argument("reference", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here (else stdout).")
@click.option("--great-expectations", is_flag=True, help="Write a Great Expectations suite.")
@click.option("--margin", type=float, default=0.1, show_default=True, help="Widen ranges by this.")
@click.option("--target", help="The ground-truth column (not constrained).")
@click.option("--prediction", help="The prediction column (not constrained).")
@click.option("--on-violation", type=click.Choice(["quarantine", "count"]), default="quarantine")
def constraints_suggest(
    reference: Path,
    output: Path | None,
    great_expectations: bool,
    margin: float,
    target: str | None,
    prediction: str | None,
    on_violation: str,
) -> None:
    """Propose validation rules from a REFERENCE file (.parquet, .csv, .arrow)."""
    from watchkeeper import constraints
    from watchkeeper.io import read_file
    from watchkeeper.schema import infer_schema

    table = read_file(reference, name="reference")
    schema = infer_schema(table, target=target, prediction=prediction)
    doc = constraints.suggest(table, schema=schema, margin=margin, on_violation=on_violation)
    text = constraints.save(doc, output, great_expectations=great_expectations)
    click.echo(f"wrote {output}" if output else text.rstrip())
