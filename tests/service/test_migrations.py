"""The state store's Alembic migrations, on SQLite and PostgreSQL: a fresh database matches the
tables, a database of release 0.1 (numbered steps, ``wk_schema_version``) upgrades in place with
its data, and the tables and the revisions never disagree."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.service import release_0_1_store as old
from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.store import migrations
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store, create_engine

OpenStore = Callable[[str], Store]


def schema(engine: sa.Engine) -> dict[str, Any]:
    """Every table's columns, primary key, indexes and unique constraints, as reflected."""
    insp = sa.inspect(engine)
    out = {}
    for name in sorted(insp.get_table_names()):
        out[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"])
                for c in insp.get_columns(name)
            ],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
        }
    return out


def differences(engine: sa.Engine) -> list[Any]:
    """What ``alembic revision --autogenerate`` would write: the tables against the database,
    column types and server defaults included."""
    options = {"compare_type": True, "compare_server_default": True}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=options)
        return list(compare_metadata(context, t.metadata))


def rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table of release 0.1, sorted."""
    with engine.connect() as conn:
        return {
            name: sorted(
                (dict(r._mapping) for r in conn.execute(sa.select(table))),
                key=lambda r: repr(sorted(r.items())),
            )
            for name, table in old.metadata.tables.items() | old.alerts_metadata.tables.items()
            if name != "wk_schema_version"
        }


def release_0_1_database(url: str) -> sa.Engine:
    """A database created by release 0.1 (its ``migrate``: steps 1–4), with a row in most tables."""
    engine = create_engine(url)
    assert old.migrate(engine) == 4
    model = {"model": "kept", "version": "v1"}
    with engine.begin() as conn:
        conn.execute(
            old.models.insert().values(
                name="kept", created_at=1.0, champion="v1", window_seconds=60,
                label_horizon_seconds=10.0, retention_days=7.0, segments=["region"],
                drift_reference="previous_window",
            )
        )  # fmt: skip
        conn.execute(
            old.versions.insert().values(
                **model, created_at=1.0, schema={"columns": []}, reference_profile=b"\x00\x01",
                reference_rows=400, reference_sample=None,
            )
        )  # fmt: skip
        conn.execute(
            old.batches.insert().values(
                **model, received_at=2.0, events=1, payload=b"arrow", processed=True
            )
        )
        conn.execute(
            old.predictions.insert().values(
                **model, prediction_id="p1", event_time=2.0, bucket=0, segment="eu",
                prediction="yes", score=0.75, batch_id=1, received_at=2.0,
            )
        )  # fmt: skip
        conn.execute(
            old.actuals.insert().values(
                model="kept", prediction_id="p1", label="no", received_at=3.0, status="matched"
            )
        )
        conn.execute(old.counters.insert().values(model="kept", name="events_total", value=1))
        conn.execute(
            old.metric_points.insert().values(
                **model, segment="", window_start=0, window_seconds=60, metric="psi",
                feature="age", value=0.125, detail={"method": "psi"},
            )
        )  # fmt: skip
        conn.execute(
            old.monitors.insert().values(
                name="psi-age", spec={"metric": "psi"}, created_at=1.0, updated_at=1.0
            )
        )
        conn.execute(
            old.alerts.insert().values(
                monitor="psi-age", target="kept", open_key=None, **model, segment="",
                severity="warning", state="resolved", metric="psi", value=0.125,
                condition="psi > 0.1", threshold=0.1, window_start=0, window_seconds=60,
                sample_size=10, detail={}, summary="psi of age", notified="resolved",
                created_at=1.0, started_at=1.0, resolved_at=2.0, updated_at=2.0,
            )
        )  # fmt: skip
    return engine


# ------------------------------------------------------------------------------ fresh
def test_a_fresh_database_is_at_the_head_and_matches_the_tables(
    database_url: str, open_store: OpenStore
) -> None:
    store = open_store(database_url)
    assert store.schema_version == migrations.head() == migrations.current(store.engine)
    assert differences(store.engine) == []
    tables = set(sa.inspect(store.engine).get_table_names())
    assert tables == {*t.metadata.tables, "alembic_version"}


def test_migrating_is_idempotent_and_state_survives_reopening(
    database_url: str, open_store: OpenStore
) -> None:
    first = open_store(database_url)
    first.create_model("churn", window_seconds=60, label_horizon_seconds=1, retention_days=1)
    first.close()
    second = open_store(database_url)
    assert second.schema_version == first.schema_version == migrations.head()
    with second.engine.connect() as conn:
        stamped = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert stamped == [migrations.head()]  # one row: one line of revisions
    assert second.model("churn").window_seconds == 60
    assert differences(second.engine) == []


def test_the_revisions_are_one_line_from_0001_to_the_head() -> None:
    script = migrations.script_directory()
    line = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert line[: len(migrations.LEGACY_REVISIONS)] == list(migrations.LEGACY_REVISIONS.values())
    assert line[-1] == migrations.head() and len(script.get_heads()) == 1


def test_a_change_to_the_tables_without_a_revision_is_found(
    database_url: str, open_store: OpenStore
) -> None:
    """The check of the tests above would catch a column added to the tables only."""
    store = open_store(database_url)
    extra = sa.MetaData()
    for table in t.metadata.tables.values():
        table.to_metadata(extra)
    sa.Table("wk_models", extra, sa.Column("owner", sa.String(200)), extend_existing=True)
    sa.Table("wk_notes", extra, sa.Column("id", sa.Integer, primary_key=True))
    with store.engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn), extra)
    assert {(d[0], d[3].name) if d[0] == "add_column" else (d[0], d[1].name) for d in found} == {
        ("add_column", "owner"),
        ("add_table", "wk_notes"),
    }


# ------------------------------------------------------------------------------ release 0.1
def test_a_release_0_1_database_upgrades_in_place_with_its_data(
    database_url: str, server: Callable[..., Any], open_store: OpenStore
) -> None:
    legacy = release_0_1_database(database_url)
    before = rows(legacy)
    assert sum(map(len, before.values())) >= 9
    assert "alembic_version" not in sa.inspect(legacy).get_table_names()

    running = server(database_url)  # the new code starts on it: the server migrates first
    with running.client() as client:
        r = client.get("/v1/models")
        assert r.status_code == 200, r.text
        assert r.json()["models"] == ["kept"]
    running.kill()

    store = open_store(database_url)
    assert store.schema_version == migrations.head()
    # every row kept; revision 0005 adds the model's newest event time as a counter
    newest = {"model": "kept", "name": "last_event_time_us", "value": 2_000_000}
    after = rows(store.engine)
    assert newest in after["wk_counters"]
    after["wk_counters"].remove(newest)
    assert after == before
    assert store.last_event_time("kept") == 2.0
    assert store.model("kept").drift_reference == "previous_window"
    tables = set(sa.inspect(store.engine).get_table_names())
    assert "wk_schema_version" not in tables and "alembic_version" in tables
    assert differences(store.engine) == []
    legacy.dispose()


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_database_of_an_earlier_step_is_brought_up_to_date(
    module_databases: Callable[[], str], open_store: OpenStore, step: int
) -> None:
    """Step 1 left no alert tables; before step 3 no drift reference, before 4 no scope index."""
    database_url, fresh_url = module_databases(), module_databases()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        old.schema_version.create(conn)
        for number, migration in enumerate(old.MIGRATIONS[:step], start=1):
            migration(conn)
            conn.execute(old.schema_version.insert().values(version=number))
        conn.execute(
            old.models.insert().values(
                name="kept", created_at=1.0, champion=None, window_seconds=60,
                label_horizon_seconds=1.0, retention_days=1.0, segments=[],
            )
        )  # fmt: skip
        if step < 3:  # what the databases of the steps before it lacked
            conn.execute(sa.text("ALTER TABLE wk_models DROP COLUMN drift_reference"))
            conn.execute(sa.text("DROP INDEX ix_wk_quarantine_id"))
        if step < 4:
            conn.execute(sa.text("DROP INDEX ix_wk_points_scope"))
    assert ("wk_alerts" in sa.inspect(engine).get_table_names()) == (step >= 2)
    engine.dispose()

    store = open_store(database_url)
    assert store.schema_version == migrations.head()
    assert [m.name for m in store.models()] == ["kept"]
    assert store.model("kept").drift_reference == "training"
    inspector = sa.inspect(store.engine)
    assert "ix_wk_quarantine_id" in {i["name"] for i in inspector.get_indexes("wk_quarantine")}
    assert "ix_wk_points_scope" in {i["name"] for i in inspector.get_indexes("wk_metric_points")}
    assert differences(store.engine) == []
    assert schema(store.engine) == schema(open_store(fresh_url).engine)
    with pytest.raises(InputError, match="drift_reference 'rolling'"):
        store.create_model(
            "x", window_seconds=60, label_horizon_seconds=1, retention_days=1,
            drift_reference="rolling",
        )  # fmt: skip


def test_an_upgraded_database_has_the_schema_of_a_fresh_one(
    module_databases: Callable[[], str], open_store: OpenStore
) -> None:
    legacy_url, fresh_url = module_databases(), module_databases()
    release_0_1_database(legacy_url).dispose()
    upgraded, fresh = open_store(legacy_url), open_store(fresh_url)
    assert schema(upgraded.engine) == schema(fresh.engine)


def test_a_database_of_a_newer_numbered_step_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        old.migrate(engine)
        with engine.begin() as conn:
            conn.execute(old.schema_version.insert().values(version=5))
        with pytest.raises(WatchkeeperError, match="step 5, newer than this release knows"):
            migrations.migrate(engine)
        assert "wk_schema_version" in sa.inspect(engine).get_table_names()  # left as it was
    finally:
        engine.dispose()


MIGRATE_AT = """
import sys, time
from watchkeeper.store.migrations import migrate
from watchkeeper.store.state import create_engine

engine = create_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(migrate(engine))
"""


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Replicas started at once on one database: one migrates, the others wait for its lock
    and find the database at the head."""
    start_at = time.time() + 4.0  # all three have imported by then, and go at once
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT, database_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [(p.returncode, err) for p, (_, err) in zip(processes, outputs, strict=True)] == [
        (0, "")
    ] * 3
    assert [out.strip() for out, _ in outputs] == [migrations.head()] * 3
    engine = create_engine(database_url)
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_an_upgraded_database_keeps_the_audit_trail_append_only(
    module_databases: Callable[[], str], open_store: OpenStore
) -> None:
    """Revision 0012's triggers, on a database that came up from release 0.1: a row is added
    in a write transaction; changing or deleting it is refused by the database."""
    from watchkeeper.store.audit import acting_as, entries

    url = module_databases()
    release_0_1_database(url).dispose()
    store = open_store(url)
    with acting_as("migrator"):
        store.create_model("audited", window_seconds=60, label_horizon_seconds=1, retention_days=1)
    (row,) = entries(store, model="audited")
    assert (row["kind"], row["actor"], row["before"]) == ("model_registered", "migrator", None)
    for statement in (t.audit.update().values(actor="x"), t.audit.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.write() as conn:
            conn.execute(statement)
    assert entries(store, model="audited") == [row]
