"""``Alerting``: the alert parts of a running service, built from its settings.

The monitors and notifiers come parsed from :func:`watchkeeper.alerts.config.alert_config`
(``create_app`` checks them first, before it opens anything).

The monitor catalog, the engine (run by the evaluator after each pass), the delivery outbox
loop and the job runner. ``create_app`` builds one and starts/stops it with the server.
"""

from __future__ import annotations

from collections.abc import Callable

from watchkeeper.alerts.catalog import Catalog
from watchkeeper.alerts.config import AlertConfig, alert_config
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.outbox import Outbox
from watchkeeper.alerts.retrain import JobRunner
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store


class Alerting:
    def __init__(self, store: Store, settings: Settings, config: AlertConfig | None = None) -> None:
        config = alert_config(settings) if config is None else config
        self.notifiers = config.notifiers
        self.catalog = Catalog(store, config.monitors, self.notifiers)
        self.outbox = Outbox(
            store,
            self.notifiers,
            max_attempts=settings.delivery_attempts,
            backoff=settings.delivery_backoff_seconds,
            timeout=settings.delivery_timeout_seconds,
        )
        self.jobs = JobRunner(store, settings.data_dir, settings.lake_dir)
        self.engine = AlertEngine(
            store,
            self.catalog,
            self.notifiers,
            public_url=settings.public_url,
            on_enqueue=self._wake,
        )
        self._interval = min(1.0, settings.evaluation_interval_seconds)

    def _wake(self) -> None:
        self.outbox.wake()
        self.jobs.wake()

    def start(self, gate: Callable[[], bool] | None = None) -> None:
        """``gate``: whether this process runs the jobs now (the ``jobs`` lease); the outbox
        runs in every replica (its rows are claimed with SKIP LOCKED)."""
        self.outbox.start(self._interval)
        self.jobs.start(self._interval, gate)

    def stop(self) -> None:
        self.jobs.stop()
        self.outbox.stop()
