"""The state store's migrations: Alembic revisions shipped in the package, applied at startup.

The revisions are the files of ``versions/`` (``0001_initial.py`` ...), run here without an
``alembic.ini`` or an ``env.py``: :func:`migrate` builds Alembic's script directory from the
installed package and upgrades the database to the newest revision in one transaction,
keeping the revision in force in Alembic's ``alembic_version`` table.

A database of release 0.1 kept the number of its last applied step (1–4) in
``wk_schema_version``. Those four steps are revisions ``0001``–``0004``, so such a database is
stamped at the revision of the same number, the old table dropped, and upgraded from there.

A change to the tables (``store/tables.py``) comes with a new revision: a file in ``versions/``
named ``NNNN_what.py`` with ``revision = "NNNN"`` and ``down_revision`` the current head, its
``upgrade()`` written with ``alembic.op`` (the operations ``alembic revision --autogenerate``
would draft). ``tests/service/test_migrations.py`` fails, listing the differences, while the
tables and the revisions disagree.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from watchkeeper.errors import WatchkeeperError
from watchkeeper.store.tables import metadata

HERE = Path(__file__).resolve().parent
LEGACY_TABLE = "wk_schema_version"  # release 0.1's numbered steps
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}  # step number → revision
LOCK_KEY = 0x77_6B_6D_69_67  # PostgreSQL advisory lock of the migrations ("wkmig")
_IN_PROCESS = threading.Lock()


def script_directory() -> ScriptDirectory:
    """The revisions as Alembic sees them, from the installed package."""
    return ScriptDirectory(str(HERE), version_locations=[str(HERE / "versions")])


def head() -> str:
    """The newest revision."""
    revision = script_directory().get_current_head()
    assert revision is not None, "no revisions in store/migrations/versions"
    return revision


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at; None before the first migration."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine) -> str:
    """Apply the revisions not applied yet, in one transaction; return the revision in force.

    The transaction holds the database's migration lock from its start (PostgreSQL: an
    advisory lock; SQLite: ``BEGIN IMMEDIATE``, the write lock), so of several processes
    starting together one migrates and the others then find the database up to date. Alembic
    runs one migration at a time per process (``op`` is a module-level proxy): so does this.
    """
    script = script_directory()

    def upgrade(heads: Any, _context: MigrationContext) -> Any:
        # what ``alembic upgrade head`` runs; ``heads`` is the tuple of the revisions in force
        return script._upgrade_revs("head", heads)

    with _IN_PROCESS, engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        _adopt_legacy(conn, script)
        with EnvironmentContext(Config(), script, fn=upgrade, destination_rev="head") as env:
            # a transaction begun outside: Alembic commits nothing, this block commits all
            env.configure(connection=conn, target_metadata=metadata)
            env.run_migrations()
        revision = MigrationContext.configure(conn).get_current_revision()
    assert revision is not None
    return revision


def _adopt_legacy(conn: sa.Connection, script: ScriptDirectory) -> None:
    """Stamp a database of release 0.1 at the revision of its last numbered step, and drop
    the numbered steps' table."""
    if not sa.inspect(conn).has_table(LEGACY_TABLE):
        return
    context = MigrationContext.configure(conn)
    if context.get_current_revision() is None:
        step = conn.execute(sa.text(f"SELECT MAX(version) FROM {LEGACY_TABLE}")).scalar()
        if step:
            if step not in LEGACY_REVISIONS:
                raise WatchkeeperError(
                    f"{LEGACY_TABLE} is at step {step}, newer than this release knows "
                    f"({max(LEGACY_REVISIONS)}): run the release that created the database"
                )
            context.stamp(script, LEGACY_REVISIONS[step])
    conn.execute(sa.text(f"DROP TABLE {LEGACY_TABLE}"))
