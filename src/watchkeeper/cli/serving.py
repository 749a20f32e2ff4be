"""``watchkeeper attach``: a version's model artifact to serve (docs/serving.md), on a running
service, through :func:`watchkeeper.sdk.attach_artifact`; ``register --artifact`` shares its
options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from watchkeeper.cli._api import api_error, api_options
from watchkeeper.errors import InputError
from watchkeeper.sdk import RequestError, attach_artifact


def artifact_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how to read and trust an artifact."""
    options = [
        click.option(
            "--artifact-format",
            type=click.Choice(["onnx", "skops", "pickle"]),
            help="The artifact's format when its file name does not say (.onnx, .skops, .pkl).",
        ),
        click.option("--inputs", help="The model's input names in order, comma-separated."),
        click.option(
            "--trust-type",
            "trust_types",
            multiple=True,
            help="A type of a skops file to trust (repeatable); refused types are named.",
        ),
        click.option(
            "--trust-pickle",
            is_flag=True,
            help="Load a pickle/joblib artifact: it runs code when loaded.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def attach_or_fail(url: str, token: str | None, model: str, version: str, **kwargs: Any) -> Any:
    """Attach the artifact; a refusal is the command's one-line error."""
    try:
        return attach_artifact(url, model, version, token=token, **kwargs)
    except (RequestError, ConnectionError) as exc:
        raise api_error(exc) from None
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None


def describe(info: dict[str, Any]) -> str:
    return (
        f"attached a {info['format']} artifact to {info['model']} {info['version']} "
        f"(sha256 {info['sha256'][:12]}, inputs {', '.join(info['features'])})"
    )


@click.command()
@click.argument("model")
@click.argument("version")
@click.argument("artifact")
@artifact_options
@api_options
def attach(
    model: str,
    version: str,
    artifact: str,
    artifact_format: str | None,
    inputs: str | None,
    trust_types: tuple[str, ...],
    trust_pickle: bool,
    url: str,
    token: str | None,
) -> None:
    """Attach (or replace) the model ARTIFACT of MODEL's VERSION: a .onnx or .skops file, a
    pickle with --trust-pickle, or an MLflow URI (models:/name@alias, runs:/<id>/model)."""
    info = attach_or_fail(
        url,
        token,
        model,
        version,
        artifact=artifact,
        artifact_format=artifact_format,
        inputs=inputs.split(",") if inputs else None,
        trusted_types=list(trust_types) or None,
        trust_pickle=trust_pickle,
    )
    click.echo(describe(info))
