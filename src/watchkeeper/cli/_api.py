"""The commands that talk to a running service: its address and token options, and one call
through the SDK's :func:`watchkeeper.sdk.request` whose refusal becomes :class:`ApiError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from watchkeeper.errors import WatchkeeperError
from watchkeeper.sdk import RequestError, request

DEFAULT_URL = "http://127.0.0.1:8700"

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(WatchkeeperError):
    """The server answered with an error, or could not be reached."""

    exit_code = 2


def api_error(exc: RequestError | ConnectionError) -> ApiError:
    """The one line a refusal or an unreachable service prints."""
    if isinstance(exc, ConnectionError):
        return ApiError(str(exc))
    if exc.error_type:
        return ApiError(f"{exc.status} {exc.error_type}: {exc.message}")
    return ApiError(f"HTTP {exc.status}: {' '.join(exc.message.split())[:200]}")


def call(
    url: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    *,
    content: tuple[bytes, str] | None = None,
) -> Any:
    """One request to the service (a JSON ``body``, or ``content``: bytes and their content
    type); an error becomes :class:`ApiError` with its message."""
    try:
        return request(url, method, path, body, token=token, content=content)
    except (RequestError, ConnectionError) as exc:
        raise api_error(exc) from None
    except ValueError as exc:  # a --url that is not http(s)://host[:port]
        raise ApiError(str(exc)) from None


def api_options(f: F) -> F:
    """``--url`` and ``--token`` (env ``WATCHKEEPER_URL``, ``WATCHKEEPER_TOKEN``)."""
    f = click.option(
        "--token", envvar="WATCHKEEPER_TOKEN", help="API token (env WATCHKEEPER_TOKEN)."
    )(f)
    return click.option(
        "--url",
        envvar="WATCHKEEPER_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The service (env WATCHKEEPER_URL).",
    )(f)
