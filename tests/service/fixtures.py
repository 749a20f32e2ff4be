"""Fixtures of the service tests: one database per backend and ``watchkeeper serve`` as a process.

A pytest plugin (``tests/conftest.py`` registers it), so its fixtures reach every test; a
test imports its helpers by name (``from tests.service.fixtures import Server``).

* ``database_url`` (a fresh database per test) and ``module_databases`` (a factory of fresh
  databases, dropped at the end of the module) are parametrised over ``sqlite`` (a file
  under a temporary directory) and ``postgresql`` (a database ``wk_test_<hex>`` created on
  127.0.0.1:5432 and dropped after, ``DROP DATABASE ... WITH (FORCE)``). Without a reachable
  PostgreSQL the ``postgresql`` cases are skipped, except under CI (env ``CI`` set), where
  they fail: CI must test both backends. :func:`terminate_backends` ends the connections
  of such a database from the outside, as a PostgreSQL restart or failover does.
* ``small_filesystem(path, mib)``: a tmpfs of ``mib`` MiB mounted at ``path`` (a context
  manager), for a disk that really fills up; skipped where mounting is not permitted, except
  under CI, where it fails.
* ``small_tablespace(mib)``: a PostgreSQL tablespace on a tmpfs of ``mib`` MiB (a context
  manager yielding its name and mount point), for a PostgreSQL database whose disk really
  fills up: ``make_database("postgresql", ..., tablespace=name)``. It needs the server on
  this machine and the right to mount; skipped otherwise, except under CI.
* ``server`` (per test) and ``module_server`` (per module) are factories of :class:`Server`:
  ``watchkeeper serve`` in a subprocess on a free port, which can be SIGKILLed and restarted on
  the same data directory and database.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

PG_HOST, PG_PORT = "127.0.0.1", 5432
BACKENDS = ("sqlite", "postgresql")
START_TIMEOUT = 60.0
# Event times a few minutes old: inside every retention and label horizon (old events' index
# entries are swept, and a retry of them would be new again) and inside an open window.
EVENT_TIME = float(int(time.time()) - 600)


# ---------------------------------------------------------------------------------- databases
_pg_failures: list[str] = []


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: both backends must be tested)", pytrace=False)
    pytest.skip(message)


def _pg_admin() -> tuple[Any, str]:
    """An autocommit connection to the ``postgres`` database, and the user it connected as."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dev dependency
        _unavailable(f"psycopg is not installed: {exc}")
        raise
    if _pg_failures:  # tried before in this run: do not wait for the timeouts again
        _unavailable(_pg_failures[0])
    errors = []
    for user in dict.fromkeys(("postgres", getpass.getuser())):
        try:
            conn = psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user=user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        except psycopg.Error as exc:
            errors.append(f"as {user}: {' '.join(str(exc).split())}")
        else:
            return conn, user
    _pg_failures.append(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {'; '.join(errors)}")
    _unavailable(_pg_failures[0])
    raise AssertionError("unreachable")


@contextmanager
def make_database(backend: str, directory: Path, *, tablespace: str | None = None) -> Iterator[str]:
    """A fresh, empty database of ``backend``; yields the URL ``watchkeeper serve`` takes.
    ``tablespace``: PostgreSQL only, where the database's tables are kept."""
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{directory / 'state.db'}"
        return
    from psycopg import sql

    admin, user = _pg_admin()
    name = f"wk_test_{secrets.token_hex(6)}"
    with admin:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if tablespace is not None:
            create += sql.SQL(" TABLESPACE {}").format(sql.Identifier(tablespace))
        admin.execute(create)
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin, _ = _pg_admin()
        with admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def terminate_backends(database_url: str) -> int:
    """End every connection to the PostgreSQL database of ``database_url``
    (``pg_terminate_backend``), as a restart or failover of PostgreSQL does; return how many."""
    name = database_url.rsplit("/", 1)[1]
    admin, _ = _pg_admin()
    with admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy URL the service derives from ``database_url`` (driver included)."""
    return Settings(database_url=database_url).sqlalchemy_url


@pytest.fixture
def open_store() -> Iterator[Callable[[str], Store]]:
    """``open_store(database_url)``: a :class:`Store` on that database, closed after the test.

    Open it after a server on the same database has started (the server migrates first)."""
    opened: list[Store] = []

    def open_(database_url: str) -> Store:
        opened.append(Store(sqlalchemy_url(database_url)))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with make_database(request.param, tmp_path / "db") as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """``module_databases()``: one more fresh database of this module's backend."""
    with ExitStack() as stack:

        def new() -> str:
            directory = tmp_path_factory.mktemp("db")
            return stack.enter_context(make_database(request.param, directory))

        yield new


@contextmanager
def small_filesystem(path: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB mounted at ``path`` (created) and unmounted after."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        _unavailable(f"cannot mount a small filesystem: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def small_tablespace(mib: int) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL tablespace on a tmpfs of ``mib`` MiB, owned by the server's user; yields
    its name and mount point (where :func:`fill` fills it), and drops and unmounts it after.

    The mount point is a directory of its own under the system's temporary directory (the
    server's user cannot reach into pytest's, which only its owner may enter)."""
    import pwd
    import tempfile

    from psycopg import sql

    if PG_HOST not in ("127.0.0.1", "localhost"):
        _unavailable("the PostgreSQL server is not on this machine")
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("no 'postgres' system user owns the PostgreSQL server here")
        raise
    mount = Path(tempfile.mkdtemp(prefix="wk-tablespace-"))
    mount.chmod(0o755)
    options = f"size={mib}m,uid={account.pw_uid},gid={account.pw_gid},mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        mount.rmdir()
        _unavailable(f"cannot mount a small filesystem: {mounted.stderr.decode().strip()}")
    name = f"wk_small_{secrets.token_hex(4)}"
    try:
        admin, _ = _pg_admin()
        with admin:
            admin.execute(
                sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                    sql.Identifier(name), sql.Literal(str(mount))
                )
            )
        try:
            yield name, mount
        finally:
            admin, _ = _pg_admin()
            with admin:
                admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its filesystem is full; return the file."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 2**20)
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as f:
        while True:  # the last blocks
            f.write(b"\0" * 4096)
    return filler


# ---------------------------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    """The ``watchkeeper`` console script of this interpreter's environment, or the module."""
    beside = Path(sys.executable).with_name("watchkeeper")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("watchkeeper")
    if found:
        return [found]
    return [sys.executable, "-m", "watchkeeper.cli"]


class Server:
    """``watchkeeper serve`` in a subprocess; ``kill`` is SIGKILL, ``restart`` keeps the state."""

    def __init__(
        self, database_url: str, data_dir: Path, log: Path, env: Mapping[str, str]
    ) -> None:
        self.database_url, self.data_dir, self.log = database_url, data_dir, log
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def start(self, *, wait: bool = True) -> Server:
        """Launch the process; with ``wait`` (else call :meth:`wait_ready`), until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
        env.update({"WATCHKEEPER_LOG_LEVEL": "warning", **self.env})
        cmd = [*_command(), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += ["--database", self.database_url]
        with self.log.open("ab") as log:
            log.write(f"\n--- {' '.join(cmd)}\n".encode())
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self.wait_ready() if wait else self

    def wait_ready(self, *, running: bool = True) -> Server:
        """Until ``/healthz`` answers and, with ``running``, says ``ok``: migrated and running
        (while it starts it answers ``starting``; see ``server/starting.py``)."""
        assert self.process is not None, "not started"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"watchkeeper serve exited:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200 and (not running or r.json()["status"] == "ok"):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"watchkeeper serve did not answer /healthz:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def restart(self) -> Server:
        self.kill()
        return self.start()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


ServerFactory = Callable[..., Server]


class _Servers:
    def __init__(self, directory: Path) -> None:
        self.directory, self.servers = directory, list[Server]()

    def __call__(
        self,
        database_url: str,
        *,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Server:
        n = len(self.servers)
        data_dir = data_dir or self.directory / f"data-{n}"
        server = Server(database_url, data_dir, self.directory / f"server-{n}.log", env or {})
        self.servers.append(server)
        return server.start(wait=wait)

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerFactory]:
    """``server(database_url, data_dir=None, env=None, wait=True)`` starts a :class:`Server`."""
    servers = _Servers(tmp_path)
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    servers = _Servers(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.close()


def _wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stored_ids(store: Store, model: str) -> list[str]:
    """The model's ids in the prediction index, as often as each is there."""
    with store.engine.connect() as conn:
        q = sa.select(t.predictions.c.prediction_id).where(t.predictions.c.model == model)
        return list(conn.execute(q).scalars())


def lake_counts(server: Server, model: str) -> dict[str, int]:
    """How often each id is in the lake, read with DuckDB over the hive-partitioned files."""
    import duckdb

    with duckdb.connect() as db:
        rows = db.execute(
            f"SELECT prediction_id, count(*) FROM read_parquet('{server.lake_dir}/**/*.parquet',"
            " hive_partitioning=true) WHERE model = ? GROUP BY prediction_id",
            [model],
        ).fetchall()
    return {pid: int(n) for pid, n in rows}


# ---------------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def wait_for() -> Callable[..., None]:
    """``wait_for(condition, what, timeout=30)``: poll until true, else fail naming ``what``."""
    return _wait_for


def reference_table(rows: int = 400, seed: int = 0) -> pa.Table:
    """A training reference: ``age`` (numeric, required), ``income`` (numeric, has nulls so
    optional), ``plan`` (categorical, required), ``region`` (segment), ``pred`` (prediction)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 10_000, rows)
    return pa.table(
        {
            "age": rng.normal(40, 10, rows),
            "income": pa.array(income, mask=rng.random(rows) < 0.1),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "region": rng.choice(["eu", "us"], rows),
            "pred": rng.choice(["yes", "no"], rows),
        }
    )


def make_events(ids: list[str], *, seed: int = 1) -> list[dict[str, Any]]:
    """Valid row-JSON events for the model of :func:`reference_table`."""
    rng = np.random.default_rng(seed)
    return [
        {
            "prediction_id": pid,
            "timestamp": EVENT_TIME + i / 1000,
            "features": {
                "age": round(float(rng.normal(40, 10)), 3),
                "income": round(float(rng.normal(50_000, 10_000)), 2),
                "plan": str(rng.choice(["basic", "plus", "pro"])),
                "region": str(rng.choice(["eu", "us"])),
            },
            "prediction": str(rng.choice(["yes", "no"])),
            "latency_ms": round(float(rng.uniform(1, 200)), 3),
            "status": "error" if i % 10 == 9 else "ok",
        }
        for i, pid in enumerate(ids)
    ]


def events_table(ids: list[str], *, seed: int = 1) -> pa.Table:
    """The same events as :func:`make_events`, as a flat table (the Arrow/Parquet shape)."""
    rows = []
    for e in make_events(ids, seed=seed):
        flat = {k: v for k, v in e.items() if k != "features"}
        rows.append({**flat, **e["features"]})
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="session")
def reference() -> pa.Table:
    return reference_table()


@pytest.fixture(scope="session")
def register() -> Callable[..., str]:
    """``register(client, reference, prefix="m")``: a new model (a fresh name per call) with a
    version ``v1`` whose reference is ``reference``, uploaded as Parquet; returns its name."""
    names = itertools.count()

    def register_(client: httpx.Client, reference: pa.Table, prefix: str = "m") -> str:
        model = f"{prefix}{next(names)}-{secrets.token_hex(3)}"
        buf = io.BytesIO()
        pq.write_table(reference, buf)
        r = client.put(
            f"/v1/models/{model}/versions/v1",
            params={"prediction": "pred", "segments": "region"},
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
        return model

    return register_


@pytest.fixture(scope="session", name="make_events")
def make_events_fixture() -> Callable[..., list[dict[str, Any]]]:
    """``make_events(ids, seed=1)``: valid row-JSON events, one per id."""
    return make_events


@pytest.fixture(scope="session", name="events_table")
def events_table_fixture() -> Callable[..., pa.Table]:
    """``events_table(ids, seed=1)``: the same events as a flat Arrow table."""
    return events_table
