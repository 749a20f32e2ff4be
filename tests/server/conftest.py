"""Fixtures of the API contract tests: a running server with one registered model that has
events. The service fixtures (databases on SQLite and PostgreSQL, ``watchkeeper serve`` as a
process) come from ``tests.service.fixtures``, which ``tests/conftest.py`` registers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.service.fixtures import Server, make_events


@dataclass
class Api:
    """A running ``watchkeeper serve`` and a model registered on it, with a few events."""

    server: Server
    model: str
    ids: list[str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def api(
    module_databases: Callable[[], str],
    module_server: Callable[..., Server],
    register: Callable[..., str],
    reference: Any,
) -> Iterator[Api]:
    """One server per backend for the module, a model ``api-<hex>`` with 20 events."""
    srv = module_server(module_databases())
    ids = [f"p{i}" for i in range(20)]
    with srv.client() as client:
        model = register(client, reference, prefix="api-")
        r = client.post(f"/v1/models/{model}/predictions", json={"events": make_events(ids)})
        assert r.status_code == 200 and r.json()["accepted"] == 20, r.text
    yield Api(srv, model, ids)
