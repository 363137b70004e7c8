"""``taiqu headend serve|ingest|migrate|maintain|forget-session`` and the admin sub-commands.

``serve`` runs the API, the web console, the ingest (unless ``--no-ingest``), the command
dispatcher, the prepayment, analytics and maintenance jobs (unless ``--no-jobs``) in one process
until SIGTERM or Ctrl-C, then stops them all.  ``ingest`` runs the MQTT ingest alone (several
share the gateways with ``[mqtt] shared_group``, each its own ``client_id``); ``forget-session``
retires one for good; ``maintain`` is one storage maintenance pass (cron).  Mounted from
elsewhere: ``create-user``, ``verify-audit`` (``headend.ops_cli``), ``enrol-gateway``,
``enrol-headend``, ``revoke-gateway``, ``keys-init|rotate|export``, ``init-ca``
(``headend.security.cli``).

A bad configuration prints the problems (file, key, fix) and exits with status 2; a second ingest
with the same MQTT client id exits with status 3.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from headend import ops_cli
from headend.config import Settings, load_settings
from headend.db.errors import Conflict, HeadendError
from headend.security import cli as security_cli

app = typer.Typer(help="Run the head-end service and its admin tasks.", no_args_is_help=True)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="headend.toml (defaults apply without one)")
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except HeadendError as exc:
        typer.echo(f"taiqu headend: bad configuration\n{exc}", err=True)
        raise typer.Exit(2) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Apply pending schema migrations and show the schema's state."""
    from headend.db import make_engine
    from headend.db.migrate import status, upgrade

    settings = _settings(config)
    engine = make_engine(settings.database)
    try:
        applied = upgrade(engine)
        for version, name, done in status(engine):
            mark = "applied now" if version in applied else ("applied" if done else "pending")
            typer.echo(f"{version:04d} {name}: {mark}")
    except HeadendError as exc:
        typer.echo(f"taiqu headend migrate: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@app.command()
def ingest(
    config: ConfigOpt = None,
    verbose: bool = False,
    ready: Annotated[
        Path | None, typer.Option(help="file touched once subscribed (for supervisors)")
    ] = None,
    stats: Annotated[
        Path | None, typer.Option(help="file the counters are written to, as JSON, at stop")
    ] = None,
) -> None:
    """Run the MQTT ingest alone (until SIGTERM or Ctrl-C); one of a group with shared_group."""
    from headend.config import clock_of
    from headend.db import make_engine
    from headend.db.migrate import upgrade
    from headend.ingest.service import IngestService

    _logging(verbose)
    settings = _settings(config)
    try:
        clock = clock_of(settings)
    except HeadendError as exc:
        typer.echo(f"taiqu headend ingest: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(settings.database)
    upgrade(engine)
    service = IngestService(engine, settings, clock)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        service.start()
    except Conflict as exc:
        typer.echo(f"taiqu headend ingest: {exc}", err=True)
        raise typer.Exit(3) from None
    group = settings.mqtt.shared_group
    typer.echo(
        f"ingest running as MQTT client {settings.mqtt.client_id!r}"
        + (f" in shared group {group!r}" if group else ""),
        err=True,
    )
    if ready is not None:
        while not done.is_set() and not service.connected.wait(0.2):
            pass
        if not done.is_set():
            ready.touch()
    done.wait()
    service.stop()
    engine.dispose()
    if stats is not None:
        stats.write_text(json.dumps(asdict(service.stats)))


@app.command("forget-session")
def forget_session(config: ConfigOpt = None) -> None:
    """Drop this client id's broker session (an ingest process retired for good)."""
    from headend.ingest.service import forget_session as forget

    settings = _settings(config)
    try:
        forget(settings.mqtt)
    except HeadendError as exc:
        typer.echo(f"taiqu headend forget-session: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"broker session of {settings.mqtt.client_id!r} dropped", err=True)


@app.command()
def maintain(config: ConfigOpt = None) -> None:
    """One storage maintenance pass: partitions, daily aggregates, retention (PostgreSQL)."""
    from headend.scale.job import one_shot

    raise typer.Exit(one_shot(_settings(config)))


@app.command()
def serve(
    config: ConfigOpt = None,
    host: str | None = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP port (0: any free port, logged at start)")
    ] = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="no MQTT ingest here")] = False,
    no_jobs: Annotated[
        bool, typer.Option("--no-jobs", help="no dispatcher or background jobs here")
    ] = False,
    verbose: bool = False,
) -> None:
    """Run the API, console, ingest, command dispatcher and jobs until SIGTERM."""
    import uvicorn

    from headend.app import create_app, tune_gc

    _logging(verbose)
    settings = _settings(config)
    try:
        application = create_app(settings, ingest=False if no_ingest else None, workers=not no_jobs)
    except HeadendError as exc:
        typer.echo(f"taiqu headend serve: {exc}", err=True)
        raise typer.Exit(2) from None
    tune_gc()
    uvicorn.run(
        application,
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        log_level="debug" if verbose else "info",
    )


ops_cli.register(app)
security_cli.register(app)
