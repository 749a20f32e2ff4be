"""``/readyz`` tells the truth: 503 with the error body and ``Retry-After`` while the database
cannot be reached or the data directory cannot be written, 200 again once they can; faults
are real (a PostgreSQL database closed to connections, a small filesystem filled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.fixtures import (
    ServerFactory,
    _pg_admin,
    fill,
    make_database,
    small_filesystem,
)

MIB = 2**20


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=10)


def assert_not_ready(r: httpx.Response, failed: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    error = r.json()["error"]
    assert error["status"] == 503 and error["type"] == "NotReady"
    assert f"{failed}:" in error["message"], error["message"]
    checks = {c["name"]: c["ok"] for c in error["checks"]}
    assert checks[failed] is False, checks


def assert_ready(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "ready"
    assert {c["name"]: c["ok"] for c in body["checks"]} == {"database": True, "disk": True}
    return body


def test_ready_when_the_database_answers_and_open_without_a_token(
    server: ServerFactory, tmp_path: Path
) -> None:
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url, env={"WATCHKEEPER_REQUIRE_TOKENS": "true"})
        body = assert_ready(_ready(srv.url))
        assert "SELECT 1" in body["checks"][0]["detail"]
        assert httpx.get(f"{srv.url}/v1/models").status_code == 401  # tokens are on
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


@pytest.mark.slow  # a fault injected into a real PostgreSQL
def test_not_ready_while_postgresql_refuses_connections(
    server: ServerFactory, tmp_path: Path
) -> None:
    with make_database("postgresql", tmp_path / "db") as url:
        srv = server(url)
        assert_ready(_ready(srv.url))
        name = url.rsplit("/", 1)[1]
        admin, _ = _pg_admin()
        with admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:
                assert_not_ready(_ready(srv.url), "database")
                assert_not_ready(_ready(srv.url), "database")  # stays so, no 500
                assert httpx.get(f"{srv.url}/healthz").status_code == 200  # alive all along
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert_ready(_ready(srv.url))


def test_not_ready_below_the_free_space_setting(server: ServerFactory, tmp_path: Path) -> None:
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url, env={"WATCHKEEPER_READY_MIN_FREE_MB": str(2**40)})
        assert_not_ready(_ready(srv.url), "disk")
        assert "ready_min_free_mb" in _ready(srv.url).json()["error"]["message"]


@pytest.mark.slow  # a filesystem mounted and filled
def test_not_ready_while_the_data_directory_s_disk_is_full(
    server: ServerFactory, tmp_path: Path
) -> None:
    with (
        make_database("postgresql", tmp_path / "db") as url,
        small_filesystem(tmp_path / "small", 8) as data_dir,
    ):
        srv = server(url, data_dir=data_dir, env={"WATCHKEEPER_READY_MIN_FREE_MB": "0"})
        assert_ready(_ready(srv.url))
        filler = fill(data_dir)
        assert_not_ready(_ready(srv.url), "disk")
        filler.unlink()
        assert_ready(_ready(srv.url))
