"""The service tests' fixtures (``tests/service/conftest.py``), for the alert tests.

A conftest's fixtures reach only its own directory, and two conftest modules cannot both be
imported as ``conftest``: the service conftest is loaded here under a name of its own and its
fixtures re-exported, so a test module says ``from servicefix import database_url, ...``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).parents[1] / "service" / "conftest.py"
_NAME = "watchkeeper_service_fixtures"

if _NAME in sys.modules:
    _module = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)

Server = _module.Server
make_database = _module.make_database
sqlalchemy_url = _module.sqlalchemy_url
database_url = _module.database_url
module_databases = _module.module_databases
open_store = _module.open_store
server = _module.server
module_server = _module.module_server
wait_for = _module.wait_for
