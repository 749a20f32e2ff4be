"""A fitted ``Reference`` is what the service registers: the SDK uploads it (its rows, its
schema in the Parquet metadata), the server registers the version with that schema as fitted,
no second inference, and stores the frozen profile the Reference would build; the CLI takes
the directory ``Reference.save`` wrote. Real HTTP server, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.service.test_registration_roles import churn_reference, put, roles_of
from watchkeeper import Reference
from watchkeeper.cli import main
from watchkeeper.errors import InputError
from watchkeeper.ingest.registry import register
from watchkeeper.profiles import profile_reference
from watchkeeper.schema import Role
from watchkeeper.sdk import Client, RequestError
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store


@pytest.fixture(scope="module")
def server(module_server: Any, module_databases: Callable[[], str]) -> Any:
    return module_server(module_databases())


def fitted() -> Reference:
    """``credit_score`` is left out by ``columns=``; ``churn_score``, not named a score, is a
    feature as fitted, where the service's own inference would take it for the score."""
    return Reference.fit(
        churn_reference(), prediction="pred", columns=["age", "plan", "churn_score"], bins=40
    )


def test_the_sdk_registers_a_reference_with_its_schema_as_fitted(
    server: Any, tmp_path: Path
) -> None:
    ref = fitted()
    sdk = Client(server.url, spool_dir=tmp_path / "spool")
    try:
        name = f"fitted-{time.monotonic_ns()}"
        answer = sdk.register(name, ref)
        assert answer["reference_rows"] == ref.rows
        roles = roles_of(answer)
        assert roles["credit_score"] == ("ignored", "as fitted (Reference.fit): not in its columns")
        assert roles["churn_score"] == ("feature", "as fitted (Reference.fit)")
        assert roles["age"] == ("feature", "as fitted (Reference.fit)")
        assert {c["name"]: c["role"] for c in answer["schema"]["columns"]} == {
            n: r for n, (r, _) in roles.items()
        }
        # the same rows as a plain table are inferred anew: a score and a feature there
        plain = roles_of(sdk.register(name, ref.table, version="v2", prediction="pred"))
        assert plain["churn_score"][0] == "score" and plain["credit_score"][0] == "feature"
        # a parameter that contradicts the Reference is refused, naming it
        with pytest.raises(RequestError) as err:
            sdk.register(name, ref, version="v3", prediction="age")
        assert err.value.status == 400
        assert "prediction: 'age' differs from the fitted Reference's 'pred'" in str(err.value)
        with pytest.raises(RequestError) as err:
            sdk.register(name, ref, version="v3", features="credit_score")
        assert "features: 'credit_score' is not a feature of the fitted Reference" in str(err.value)
        agreeing = sdk.register(name, ref, version="v3", prediction="pred")
        assert agreeing["schema"] == answer["schema"]
    finally:
        sdk.close()


def test_the_command_registers_a_saved_reference(server: Any, tmp_path: Path) -> None:
    saved = fitted().save(tmp_path / "ref")
    name = f"saved-{time.monotonic_ns()}"
    done = CliRunner().invoke(main, ["register", name, str(saved), "--url", server.url])
    assert done.exit_code == 0, done.output
    lines = [" ".join(line.split()) for line in done.output.splitlines()]
    assert "credit_score ignored numeric as fitted (Reference.fit): not in its columns" in lines
    assert "churn_score feature numeric as fitted (Reference.fit)" in lines
    # the file alone carries the schema too (its Parquet metadata)
    assert Reference.load(saved).schema == fitted().schema
    assert b"watchkeeper.reference" in pq.read_schema(saved / "data.parquet").metadata


def test_a_broken_carried_schema_is_a_400_naming_it(server: Any) -> None:
    table = fitted().to_arrow()
    table = table.replace_schema_metadata({b"watchkeeper.reference": b"{not json"})
    with server.client() as client:
        r = put(client, table, "broken")
    assert r.status_code == 400, r.text
    assert "watchkeeper.reference metadata is unreadable" in r.json()["error"]["message"]


def test_the_stored_profile_is_the_references(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    ref = fitted()
    store = open_store(database_url)
    register(store, load_settings(data_dir=tmp_path / "data"), "m", ref)
    schema, profile = store.reference("m", "v1")
    assert [(c.name, c.type, c.role) for c in schema.columns.values()] == [
        (c.name, c.type, Role.IGNORED if c.name == "credit_score" else c.role)
        for c in ref.schema.columns.values()
    ]
    expected = profile_reference(ref.table, schema, bins=40).to_dict()
    got = profile.to_dict()
    for side in (got, expected):  # a KLL sketch's compaction is randomised: not compared
        for col in side["columns"].values():
            col.pop("kll", None)
    assert got == expected
    stored = store.version("m", "v1")
    assert stored["reference_rows"] == ref.rows
    with pytest.raises(InputError, match="has its own"):
        register(store, load_settings(data_dir=tmp_path / "data"), "m", ref, version="v2",
                 schema=ref.schema)  # fmt: skip
