"""What every command shares: bad input as one line on standard error, JSON and times."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from watchkeeper.errors import WatchkeeperError


class Group(click.Group):
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
            fail(f"error: {exc.format_message()}", 2)
        except WatchkeeperError as exc:
            fail(f"error: {exc}", exc.exit_code)
        except OSError as exc:
            fail(f"error: {exc}", 2)


def fail(message: str, code: int) -> NoReturn:
    """Print ``watchkeeper: <message>`` on standard error and exit with ``code``."""
    click.echo(f"watchkeeper: {message}", err=True)
    sys.exit(code)


def print_json(data: Any) -> None:
    """The JSON the service answered, indented, on standard output."""
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def when(value: float | None) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM`` (UTC); ``—`` for none."""
    from datetime import UTC, datetime

    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")
