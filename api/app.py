"""The FastAPI application: `create_app(settings)` for uvicorn's factory mode.

The lifespan builds one `Services` per process (every worker runs it) and, at
shutdown (uvicorn stops taking requests on SIGTERM and lets in-flight ones
finish first), stops the live updater and closes the store.
"""

from __future__ import annotations

from typing import Any

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tastebud.api import errors
from tastebud.api.access import AccessLog, open_access_log
from tastebud.api.limits import BodyLimit
from tastebud.api.routes import health, router
from tastebud.api.services import Services
from tastebud.home import open_home
from tastebud.logmask import open_error_log
from tastebud.settings import Settings, load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

DESCRIPTION = """Living, explainable user profiles for recommender systems.

Send an API key from `tastebud keys create` as `Authorization: Bearer KEY`.
Every error is `{"error": {"code": ..., "message": ...}}` with a stable code."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tastebud")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "0"


def create_app(settings: Settings | None = None, **parts: Any) -> FastAPI:
    """The app for these settings (default: from the environment and tastebud.toml);
    `parts` (embedder=…, llm=…) go to the composition root instead of being built."""
    settings = settings or load_settings()
    # each worker: owner-only umask and home before the access log, SQLite or Chroma create a file
    open_home(settings.home)

    @asynccontextmanager
    async def lifespan(api: FastAPI):
        from anyio import to_thread

        services = await to_thread.run_sync(Services.start, settings, parts)
        api.state.services = services
        try:
            yield
        finally:
            await to_thread.run_sync(services.stop)

    api = FastAPI(title="tastebud", version=_version(), description=DESCRIPTION, lifespan=lifespan)
    errors.install(api)
    api.include_router(router)
    api.include_router(health)
    api.add_middleware(BodyLimit, max_body_size=settings.api_max_body_bytes)
    api.add_middleware(AccessLog, logger=open_access_log(settings.home))  # added last: outermost
    open_error_log(settings.home)  # tastebud's warnings and tracebacks, PII masked (tastebud/logmask.py)
    return api
