"""Fixtures of the dashboard tests: an app or a server filled by :mod:`dashboard_data`.

The service fixtures of ``tests/service/conftest.py`` (databases on SQLite and PostgreSQL,
``watchkeeper serve`` as a process) are reused: that file is loaded as a module and its
fixtures are re-exported here.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dashboard_data import Filled, fill, settle

_path = Path(__file__).parents[1] / "service" / "conftest.py"
_spec = importlib.util.spec_from_file_location("wk_service_fixtures", _path)
assert _spec is not None and _spec.loader is not None
service = importlib.util.module_from_spec(_spec)
sys.modules["wk_service_fixtures"] = service
_spec.loader.exec_module(service)

# re-exported fixtures
database_url = service.database_url
module_databases = service.module_databases
module_server = service.module_server
open_store = service.open_store
server = service.server


@pytest.fixture(scope="module")
def filled(
    module_databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    """The app of ``create_app`` on a fresh database of this module's backend, filled by
    :func:`fill`; its background threads are not started (``settle`` does their work)."""
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    url = module_databases()
    data_dir = tmp_path_factory.mktemp("dashboard")
    app = create_app(load_settings(environ={}, data_dir=str(data_dir), database_url=url))
    client = TestClient(app)
    sent = fill(client)
    settle(app)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    try:
        yield Filled(app, client, sent, backend)
    finally:
        app.state.store.close()
