"""``watchkeeper serve | demo | token``: run the service, the demo, and manage its API tokens
(in the state store, without a running service)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from fastapi import FastAPI

    from watchkeeper.settings import Settings


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (.yaml/.json); env WATCHKEEPER_CONFIG.",
)
@click.option("--host", help="Address to bind (default 127.0.0.1; env WATCHKEEPER_HOST).")
@click.option("--port", type=int, help="Port (default 8700; env WATCHKEEPER_PORT).")
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the SQLite state and the Parquet lake live (env WATCHKEEPER_DATA_DIR).",
)
@click.option(
    "--database",
    "database_url",
    help="postgresql://... to keep state in PostgreSQL (env WATCHKEEPER_DATABASE_URL).",
)
@click.option(
    "--require-tokens/--no-require-tokens",
    "require_tokens",
    default=None,
    help="Require a bearer token on every API request (default: only when --host is not a "
    "loopback address; env WATCHKEEPER_REQUIRE_TOKENS).",
)
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    require_tokens: bool | None,
) -> None:
    """Run the monitoring service (ingest, query API, /metrics)."""
    import uvicorn

    from watchkeeper.alerts.config import alert_config
    from watchkeeper.server.app import create_app
    from watchkeeper.server.launch import CannotStart, DataDirLock, listen
    from watchkeeper.server.starting import Starting
    from watchkeeper.settings import load_settings
    from watchkeeper.store.leases import LeaseError

    settings = load_settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        require_tokens=require_tokens,
    )
    alert_config(settings)  # a bad monitor or notifier is named before anything is claimed
    # the port and the data directory are claimed before anything is written
    sock = listen(settings.host, settings.port)
    lock = DataDirLock(
        settings.data_dir, owner=f"watchkeeper serve on {settings.host}:{settings.port}"
    ).acquire()
    failed: list[BaseException] = []

    def build(settings: Settings) -> FastAPI:
        """Once the database is migrated (``server/starting.py``): the app, then its lines."""
        app = create_app(settings)
        for line in _auth_lines(settings, app.state.store):
            click.echo(line, err=True)
        return app

    def stop(exc: BaseException) -> None:  # starting failed: stop serving, exit with the error
        failed.append(exc)
        server.should_exit = True

    starting = Starting(settings, build, on_failure=stop)
    settings = starting.settings  # with its replica id
    click.echo(
        f"watchkeeper {settings.host}:{settings.port}"
        f" · replica {settings.replica_id}"
        f" · state {settings.sqlalchemy_url.split('@')[-1]}"
        f" · lake {settings.lake_dir}",
        err=True,
    )
    hosts = ", ".join(settings.trusted_hosts)
    click.echo(f"hosts: {hosts} (other Host names get 400; allowed_hosts)", err=True)
    server = uvicorn.Server(
        uvicorn.Config(
            starting,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    finally:
        lock.release()
    if failed:
        exc = failed[0]
        if isinstance(exc, CannotStart | LeaseError):
            raise exc
        raise CannotStart(f"could not start: {type(exc).__name__}: {exc}") from exc


def _auth_lines(settings: Any, store: Any) -> list[str]:
    """What the startup prints about authentication: whether tokens are required, and a
    warning when that leaves the API locked for everyone or open to the network."""
    from watchkeeper.store.tokens import list_tokens

    if settings.tokens_required:
        n = len(list_tokens(store))
        if n:
            return [f"auth: bearer tokens required ({n} token{'s' if n != 1 else ''})"]
        return [
            "auth: bearer tokens required",
            "warning: no token exists yet, so every API request gets 401; create one with "
            "`watchkeeper token create NAME --scopes ingest,read,admin`"
            " (same --data-dir/--database)",
        ]
    lines = ["auth: off: no token is asked for (--require-tokens turns it on)"]
    if not settings.is_loopback:
        lines.append(
            f"warning: tokens are off on {settings.host}, which is not a loopback address: "
            "anyone who can reach it can read and change everything"
        )
    return lines


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (stored hashed in the state store)."""


def _store(config: Path | None, data_dir: Path | None, database_url: str | None) -> Any:
    from watchkeeper.settings import load_settings
    from watchkeeper.store.state import Store

    settings = load_settings(config, data_dir=data_dir, database_url=database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.sqlalchemy_url)


_STORE_OPTIONS = [
    click.option(
        "--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file."
    ),
    click.option(
        "--data-dir",
        "data_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="The service's data directory.",
    ),
    click.option("--database", "database_url", help="postgresql://... state store."),
]


def _store_options(f: Any) -> Any:
    for option in reversed(_STORE_OPTIONS):
        f = option(f)
    return f


@token.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    default="ingest,read",
    show_default=True,
    help="Comma-separated: ingest, read, admin.",
)
@_store_options
def token_create(
    name: str, scopes: str, config: Path | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from watchkeeper.store.audit import acting_as, cli_actor
    from watchkeeper.store.tokens import create_token

    with acting_as(cli_actor()):  # the audit trail records it as cli:<user>
        value = create_token(
            _store(config, data_dir, database_url),
            name,
            [s.strip() for s in scopes.split(",") if s.strip()],
        )
    click.echo(value)


@token.command("list")
@_store_options
def token_list(config: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """List tokens (ids, names, scopes; never the secrets)."""
    from watchkeeper.store.tokens import list_tokens

    for row in list_tokens(_store(config, data_dir, database_url)):
        click.echo(f"{row['id']}  {row['name']}  {','.join(row['scopes'])}")


@token.command("revoke")
@click.argument("token_id")
@_store_options
def token_revoke(
    token_id: str, config: Path | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Revoke a token by its id."""
    from watchkeeper.store.audit import acting_as, cli_actor
    from watchkeeper.store.tokens import revoke_token

    with acting_as(cli_actor()):
        revoke_token(_store(config, data_dir, database_url), token_id)
    click.echo(f"revoked {token_id}")


@click.command()
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("watchkeeper-demo"),
    show_default=True,
    help="Demo data directory (an earlier demo's is replaced).",
)
@click.option("--port", type=int, default=8700, show_default=True, help="Port of the demo service.")
@click.option(
    "--window-seconds",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="Length of the model's windows; the story takes about ten of them.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=40.0,
    show_default=True,
    help="Requests (rows) per second sent to the inference endpoint.",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0.5),
    default=8.0,
    show_default=True,
    help="Give up (exit 1) when the loop has not closed after this long.",
)
@click.option("--exit", "exit_after", is_flag=True, help="Stop once the story is told.")
def demo(
    data_dir: Path, port: int, window_seconds: int, rate: float, minutes: float, exit_after: bool
) -> None:
    """Serve an example model, let the world change under it, and watch the loop close: the
    accuracy alert fires, a retraining job trains a challenger, the challenger is judged in
    shadow on the same requests, promoted, and accuracy recovers."""
    from watchkeeper.demo import DemoPlan, run_demo

    plan = DemoPlan(window_seconds=window_seconds, rows_per_second=rate, minutes=minutes)
    story = run_demo(data_dir, port=port, plan=plan, keep_serving=not exit_after)
    if story.get("outcome") != "recovered":
        sys.exit(1)


# ------------------------------------------------------------------ alerts (over the HTTP API)
