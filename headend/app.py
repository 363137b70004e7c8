"""The FastAPI app factory: ``create_app(settings)``.

Start-up makes the engine, applies pending migrations and (unless ``ingest.enabled`` is false)
starts the MQTT ingest in the same process.  Routers are found as ``headend.api.<name>.router``
for the names in ``headend.api.ROUTERS``.  Errors map to status codes in one place: NotFound 404,
Conflict 409, out-of-scope 403, other bad requests 400, a failing database 503, never a
traceback; request validation keeps FastAPI's 422 with the field and the reason.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from headend.api import PREFIX, ROUTERS
from headend.api.deps import OutOfScope
from headend.config import Settings
from headend.db import make_engine
from headend.db.errors import Conflict, HeadendError, InvalidRequest, NotFound, StorageError
from headend.db.migrate import upgrade

log = logging.getLogger(__name__)
STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (OutOfScope, 403),
    (InvalidRequest, 400),
    (StorageError, 503),
]


def tune_gc() -> None:
    """Freeze start-up objects out of the cyclic GC and collect young objects less often.

    Full collections over every module, route and table object are what put 100+ ms into the
    API's p99; called once by the process owner (``taiqu headend serve``) after start-up.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def _auth_statuses() -> list[tuple[type[Exception], int]]:
    if importlib.util.find_spec("headend.auth.errors") is None:
        return []
    errors = importlib.import_module("headend.auth.errors")
    return [(errors.Unauthenticated, 401), (errors.Forbidden, 403)]


def _status_of(exc: Exception) -> int:
    for cls, code in _auth_statuses() + STATUS:
        if isinstance(exc, cls):
            return code
    return getattr(exc, "status_code", 400)


def _include_routers(app: FastAPI) -> list[str]:
    mounted = []
    for name in ROUTERS:
        module_name = f"headend.api.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        router = getattr(importlib.import_module(module_name), "router", None)
        if router is not None:
            app.include_router(router, prefix=PREFIX)
            mounted.append(name)
    return mounted


def create_app(
    settings: Settings, *, engine: Engine | None = None, ingest: bool | None = None
) -> FastAPI:
    """The head-end's FastAPI app (``ingest`` overrides ``settings.ingest.enabled``)."""
    run_ingest = settings.ingest.enabled if ingest is None else ingest

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(app.state.engine)
        service = None
        if run_ingest:
            from headend.ingest.service import IngestService

            service = IngestService(app.state.engine, settings)
            service.start()
        app.state.ingest = service
        try:
            yield
        finally:
            if service is not None:
                service.stop()
            if owns_engine:
                app.state.engine.dispose()

    owns_engine = engine is None
    app = FastAPI(
        title="Taiqu head-end",
        version="1",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.engine = engine if engine is not None else make_engine(settings.database)
    app.state.ingest = None
    app.state.routers = _include_routers(app)

    @app.exception_handler(HeadendError)
    async def _headend_error(_: Request, exc: HeadendError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status_of(exc))

    @app.exception_handler(IntegrityError)
    async def _conflict(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse({"detail": "conflicts with stored data (a concurrent change?)"}, 409)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", exc)
        return JSONResponse({"detail": "the database is unavailable; retry later"}, 503)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, object]:
        return {"ok": True, "ingest": app.state.ingest is not None}

    return app
