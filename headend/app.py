"""The FastAPI app factory: ``create_app(settings)``.

Start-up makes the engine, applies pending migrations and (unless ``ingest.enabled`` is false)
starts the MQTT ingest in the same process.  With ``workers=True`` (what ``taiqu headend serve``
runs) it also starts the background workers: the command dispatcher (publishing through
``mqtt_outbox`` and the ingest's connection, marking "sent" after the broker's PUBACK; it also
expires stale commands) and the prepayment jobs; the analytics daily job is started by the
analytics router's own lifespan.  Shutdown stops the workers first, then the ingest (so a command
being confirmed still is), then the engine.

Every part reads one clock, ``app.state.clock``: built from the top-level ``clock`` setting of
headend.toml (``clock = { start = …, factor = N }``; absent means the wall clock), the same
setting the simulators and gateways take, so commands' valid-until, guard-rail windows and the
jobs run on the same (possibly accelerated) time as the fleet.  Tests may replace it before
start-up.  Routers are found as ``headend.api.<name>.router`` for the names in
``headend.api.ROUTERS``; the web console (``headend.web.router``) is mounted at ``/``.
Every request body is bounded first (``headend.api.limits.BodyLimit``, ``[api] max_body_bytes``;
``max_import_bytes`` for the meter CSV import), before routing, parsing or authentication.
Errors map to status codes in one place: NotFound 404,
Conflict 409, out-of-scope 403, other bad requests 400, a failing database 503, never a
traceback; request validation keeps FastAPI's 422 with the field and the reason.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from headend.api import PREFIX, ROUTERS
from headend.api.deps import OutOfScope, RequestClock
from headend.api.limits import BodyLimit
from headend.config import Settings, check_sections, clock_of
from headend.db import make_engine
from headend.db.errors import Conflict, HeadendError, InvalidRequest, NotFound, StorageError
from headend.db.migrate import upgrade
from headend.security.errors import SecurityError
from taiqu.clock import Clock

log = logging.getLogger(__name__)
STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (OutOfScope, 403),
    (InvalidRequest, 400),
    (StorageError, 503),
    (SecurityError, 503),  # e.g. no signing key valid now
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


@dataclass
class Workers:
    """The background workers of one app: their stop switches and tasks."""

    switches: list[Any] = field(default_factory=list)  # each has ``set()``
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)  # each has ``async stop()``

    async def stop(self) -> None:
        """Ask every worker to stop, then wait for each (a stuck one is cancelled)."""
        for switch in self.switches:
            switch.set()
        for job in self.jobs:
            await job.stop()
        for task in self.tasks:
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:
                log.error("background worker %s did not stop within 30 s", task.get_name())
            except asyncio.CancelledError:
                pass


def _start_workers(app: FastAPI) -> Workers:
    """Start the dispatcher, the prepayment jobs and storage maintenance (loop running)."""
    from headend.commands.runner import make_dispatcher
    from headend.prepay import jobs
    from headend.scale.job import MaintenanceJob, scale_settings

    state = app.state
    dispatcher, publisher = make_dispatcher(
        state.engine, state.settings, state.clock, state.signer, state.encryption
    )
    state.dispatcher = dispatcher
    stop = asyncio.Event()
    workers = Workers([stop, publisher.stop])
    workers.tasks.append(asyncio.get_running_loop().create_task(dispatcher.run(stop)))
    workers.tasks.append(jobs.start(app))
    workers.switches.append(state.prepay_stop)
    scale = scale_settings(state.settings.extra, state.settings.source)
    if scale.job:  # partitions and daily aggregates; a no-op on SQLite
        maintenance = MaintenanceJob(state.engine, scale, state.clock)
        maintenance.start()
        workers.jobs.append(maintenance)
    log.info("command dispatcher, prepayment and maintenance jobs running")
    return workers


def _archive_signer(state: Any, settings: Settings) -> Any:
    """The signer of archive pushes: the dispatcher's, else one from ``[security]``, else None.

    An API-only instance (no workers) without a signing key logs a warning and pushes unsigned
    archives (gateways requiring signatures refuse them; the gateway then shows out of sync).
    """
    signer = getattr(state, "signer", None)
    if signer is not None:
        return signer
    from headend.commands.runner import make_signer
    from headend.security.errors import KeyStoreError

    try:
        return make_signer(settings)
    except KeyStoreError as exc:
        log.warning("archive pushes will go out unsigned: %s", str(exc).splitlines()[0])
        return None


def _include_console(app: FastAPI) -> None:
    if importlib.util.find_spec("headend.web") is None:
        return
    app.include_router(importlib.import_module("headend.web").router)
    app.include_router(importlib.import_module("headend.web.prefs").router)
    app.state.routers.append("web")


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    ingest: bool | None = None,
    workers: bool = False,
    clock: Clock | None = None,
) -> FastAPI:
    """The head-end's FastAPI app (``ingest`` overrides ``settings.ingest.enabled``).

    ``workers`` starts the dispatcher and the prepayment jobs (``serve`` does); it needs the
    signer of ``[security]`` and raises ``KeyStoreError`` here, before start-up, without a key.
    Every section of the configuration is checked first (``ConfigError`` listing every problem).
    """
    check_sections(settings)  # every configuration error now, not at the first request
    run_ingest = settings.ingest.enabled if ingest is None else ingest

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(app.state.engine)
        service = None
        if run_ingest:
            from headend.ingest.service import IngestService

            service = IngestService(app.state.engine, settings, app.state.clock)
            service.start()
        app.state.ingest = service
        running = _start_workers(app) if workers else Workers()
        try:
            yield
        finally:
            await running.stop()
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
    app.state.clock = clock or clock_of(settings)
    app.state.engine = engine if engine is not None else make_engine(settings.database)
    app.state.ingest = None
    app.state.dispatcher = None
    app.state.encryption = None
    if workers:
        from headend.commands.runner import make_signer
        from headend.esam.settings import service_of

        app.state.signer = make_signer(settings)
        app.state.encryption = service_of(settings.extra, settings.source)  # refuses lab in prod
    app.state.archive_signer = _archive_signer(app.state, settings)
    app.add_middleware(RequestClock)  # the routers' now() is this app's clock
    # Outermost: bodies are bounded before anything parses or authenticates them.
    app.add_middleware(
        BodyLimit,
        max_body=settings.api.max_body_bytes,
        max_import=settings.api.max_import_bytes,
    )
    app.state.routers = _include_routers(app)
    _include_console(app)

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
        return {
            "ok": True,
            "ingest": app.state.ingest is not None,
            "dispatcher": app.state.dispatcher is not None,
            "clock": app.state.clock.now().isoformat(),
        }

    return app
