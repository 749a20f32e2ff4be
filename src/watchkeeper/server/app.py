"""``create_app(settings)``: the FastAPI application. Nothing happens at import time.

The factory builds the service's parts (store, ingest service, processor, evaluator,
alerting), keeps them on ``app.state`` (routes read them through ``server/deps.py``), runs
them in the lifespan and wires the route modules: ``models_api`` and ``ingest_api`` (the
models and their events), ``dead_letters_api`` (what the processor could not
process), ``serving_api`` (model artifacts and the inference endpoints),
``promotion_api`` (champion, challengers, policies, verdicts), ``alerts_api`` (monitors,
alerts, silences, actions), ``audit_api`` (the audit trail),
``card_api`` (failing slices per window, model cards) and the ``dashboard``. The
served models route each request to the champion or a canary and copy it to the shadow
challengers (``promotion``); the evaluator's passes end with the verdicts. Errors have one
JSON shape (``server/errors.py``). Every request passes the browser guard
(``server/guard.py``: its Host, the Origin of a change) and, with tokens on, the token check
(``server/auth.py``), which names the actor of its changes (with tokens off: ``local``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from watchkeeper import __version__
from watchkeeper.alerts.config import alert_config
from watchkeeper.alerts.service import Alerting
from watchkeeper.evaluation.evaluate import Evaluator
from watchkeeper.evaluation.retention import sweep
from watchkeeper.ingest.processor import Processor, ProcessorProcess, preload
from watchkeeper.ingest.service import IngestService
from watchkeeper.ingest.writer import EventWriter
from watchkeeper.promotion.challenger import from_job
from watchkeeper.promotion.policy import configured_policies
from watchkeeper.promotion.router import Router
from watchkeeper.promotion.shadow import ShadowQueue, copy_of, serving_scorer
from watchkeeper.promotion.verdict import judge_all
from watchkeeper.server import (
    alerts_api,
    audit_api,
    card_api,
    dashboard,
    dead_letters_api,
    health,
    inference,
    ingest_api,
    models_api,
    promotion_api,
    serving_api,
)
from watchkeeper.server.apidocs import install_docs
from watchkeeper.server.bodies import BODY_TYPE
from watchkeeper.server.errors import add_error_handlers, error_body
from watchkeeper.server.fastroute import FastRoutes
from watchkeeper.server.guard import BrowserGuard
from watchkeeper.server.openapi import install_openapi
from watchkeeper.server.ratelimit import FailureLimiter
from watchkeeper.serving.registry import ScoredRequest, ServedModels
from watchkeeper.settings import Settings
from watchkeeper.store.leases import Leases, default_replica_id
from watchkeeper.store.state import Store

__all__ = ["create_app", "error_body"]

DESCRIPTION = (
    "Ingest predictions and labels, read a model's evaluated windows, manage monitors, "
    "alerts and silences. Every error has the body ErrorBody. See docs/service.md."
)


def create_app(settings: Settings) -> FastAPI:
    alert_settings = alert_config(settings)  # a bad monitor or notifier fails before anything
    if not settings.replica_id:  # named once: the processor child and the logs share it
        settings = settings.model_copy(update={"replica_id": default_replica_id()})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # which replica does which background work (store/leases.py); on SQLite: refuses a
    # second service process on the same file
    leases = Leases(
        settings.sqlalchemy_url, settings.replica_id, lease_seconds=settings.lease_seconds
    )
    store = Store(settings.sqlalchemy_url)
    service = IngestService(store, settings)
    processor: Processor | ProcessorProcess = (
        ProcessorProcess(settings)
        if settings.processor == "process"
        else Processor(store, settings, leases)
    )
    evaluator = Evaluator(store, settings.lake_dir)  # the lake: multivariate_pca's rows
    alerting = Alerting(store, settings, alert_settings)
    evaluator.after_pass.append(alerting.engine.run_once)
    served = ServedModels(store, settings)  # the models in memory (serving_api)
    router = Router(store)  # canaries answer their share (promotion/router.py)
    served.route = router.choose
    # group commit: the prediction batches (answered once committed) and, unless
    # ``serving_log`` is "sync", the served events (spooled, answered before the commit)
    writer = EventWriter(store, settings.data_dir / "spool")
    service.writer = writer
    if settings.serving_log == "spool":
        served.events = writer
    shadow = ShadowQueue(store, serving_scorer(served), size=settings.shadow_queue_size)

    def copy_to_shadows(request: ScoredRequest) -> None:
        shadow.offer(copy_of(request))  # never waits: a full queue drops and counts

    served.after_score.append(copy_to_shadows)
    # a retraining command's model becomes a version in shadow (promotion/challenger.py)
    alerting.jobs.on_artifact = lambda job, dataset, output: from_job(
        store, settings, job, dataset, output
    )
    policies = configured_policies(settings)  # a bad policy fails before anything starts
    evaluator.after_pass.append(lambda: judge_all(store, policies))  # verdicts on challengers

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()  # replays what an ended process left in the spool
        leases.start()  # the heartbeat of this replica's leases
        processor.start()
        shadow.start()
        alerting.start(gate=lambda: leases.holds("jobs"))
        # one replica evaluates (and runs the alert engine, verdicts and retention)
        evaluator.start(
            settings.evaluation_interval_seconds,
            maintenance=lambda: sweep(store, settings.lake_dir),
            gate=lambda: leases.holds("evaluator"),
        )
        try:
            yield
        finally:
            writer.stop()  # commits what the answered requests left
            evaluator.stop()
            alerting.stop()
            processor.stop()
            shadow.stop()
            leases.close()
            store.close()

    app = FastAPI(
        title="watchkeeper",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # install_docs: Swagger UI and ReDoc from the installed package,
        redoc_url=None,  # not from a CDN
        generate_unique_id_function=lambda route: route.name,  # operationId: the function
        dependencies=[BODY_TYPE],  # every route with a documented body: its content types only
    )
    app.state.settings, app.state.store, app.state.service = settings, store, service
    app.state.processor, app.state.evaluator = processor, evaluator
    app.state.alerting = alerting
    app.state.served, app.state.router, app.state.shadow = served, router, shadow
    app.state.policies = policies
    app.state.leases = leases

    # failed token checks per client (bearer and dashboard login): 429 past the limit
    app.state.limiter = FailureLimiter(
        settings.auth_failure_limit, settings.auth_failure_window_seconds
    )
    if settings.tokens_required:
        from watchkeeper.server.auth import auth_middleware

        app.middleware("http")(auth_middleware(store, app.state.limiter))
    else:  # no token names the actor: changes are recorded as "local"'s (store/audit.py)
        app.add_middleware(audit_api.LocalActor)
    # outermost: the Host and Origin checks come before the token and the routes
    app.add_middleware(BrowserGuard, settings=settings)

    add_error_handlers(app)
    app.include_router(models_api.router)
    app.include_router(dead_letters_api.router)
    app.include_router(health.router)  # /readyz: the database and the disk (/healthz: alive)
    app.include_router(ingest_api.router)
    app.include_router(serving_api.router)  # artifacts, /v1/.../predict, OIP v2 (docs/serving.md)
    app.include_router(promotion_api.router)  # champion, challengers (docs/promotion.md)
    app.include_router(alerts_api.router)
    app.include_router(audit_api.router)  # who changed what (docs/audit.md)
    app.include_router(card_api.router)  # failing slices, model cards (docs/model-card.md)
    app.include_router(dashboard.router)  # the web dashboard: / and /ui/ (docs/dashboard.md)
    # the hot routes answered first, by the same handlers (server/fastroute.py)
    fast = {
        **(inference.HANDLERS if settings.inference_fast_path else {}),
        **(ingest_api.HANDLERS if settings.ingest_fast_path else {}),
    }
    if fast:
        app.router.routes.insert(0, FastRoutes(app.router.routes, fast))
    install_openapi(app)
    install_docs(app)
    preload()  # the first request's imports, before /readyz says ready
    return app
