"""Fixtures of the dashboard tests: an app or a server filled by :mod:`dashboard_data`.

The service fixtures (databases on SQLite and PostgreSQL, ``watchkeeper serve`` as a process)
come from ``tests.service.fixtures``, which ``tests/conftest.py`` registers as a plugin.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest

from tests.dashboard.dashboard_data import Filled, fill, settle


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
    client = TestClient(app, base_url="http://localhost")  # a name the server answers to
    sent = fill(client)
    settle(app)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    try:
        yield Filled(app, client, sent, backend)
    finally:
        app.state.store.close()
