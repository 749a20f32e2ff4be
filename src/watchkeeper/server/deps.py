"""What a route needs, read from ``request.app.state`` (set once by ``create_app``).

Routes take them as ``Annotated`` dependencies (``store: StoreDep``), so the route modules
declare module-level endpoints and the app factory only builds and wires. They are ``async``
so FastAPI calls them inline, not through the thread pool (the ingest route is a hot path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from watchkeeper.alerts.catalog import Catalog
from watchkeeper.ingest.processor import Processor, ProcessorProcess
from watchkeeper.ingest.service import IngestService
from watchkeeper.serving.registry import ServedModels
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.service
    return service


async def get_processor(request: Request) -> Processor | ProcessorProcess:
    processor: Processor | ProcessorProcess = request.app.state.processor
    return processor


async def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.alerting.catalog
    return catalog


async def get_served(request: Request) -> ServedModels:
    served: ServedModels = request.app.state.served
    return served


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ServiceDep = Annotated[IngestService, Depends(get_service)]
ProcessorDep = Annotated[Processor | ProcessorProcess, Depends(get_processor)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
ServedDep = Annotated[ServedModels, Depends(get_served)]
