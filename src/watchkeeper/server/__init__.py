"""The HTTP service: ingest and query API (FastAPI), built by ``create_app(settings)``."""
