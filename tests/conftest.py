"""Fixtures shared by every test package, registered as pytest plugins.

* ``tests.service.fixtures``: databases on SQLite and PostgreSQL (``database_url``,
  ``module_databases``, ``open_store``), ``watchkeeper serve`` as a process (``server``,
  ``module_server``), ``wait_for`` and the service's test data (``reference``, ``register``,
  ``make_events``, ``events_table``);
* ``tests.alerts.receivers``: real loopback receivers (``make_http_receiver``,
  ``webhook_receiver``, ``make_smtp_receiver``, ``smtp_receiver``).

A test module imports the helpers of these modules (``Server``, ``HttpReceiver``, ...) by
their package name, ``from tests.service.fixtures import Server``; fixtures need no import.
"""

pytest_plugins = ["tests.service.fixtures", "tests.alerts.receivers"]
