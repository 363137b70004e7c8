"""``taiqu headend serve|ingest|migrate``: the head-end's commands.

A bad configuration prints the problems (file, key, fix) and exits with status 2; a second ingest
with the same MQTT client id exits with status 3.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from headend.config import Settings, load_settings
from headend.db.errors import Conflict, HeadendError

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
def ingest(config: ConfigOpt = None, verbose: bool = False) -> None:
    """Run the MQTT ingest alone (until SIGTERM or Ctrl-C)."""
    from headend.db import make_engine
    from headend.db.migrate import upgrade
    from headend.ingest.service import IngestService

    _logging(verbose)
    settings = _settings(config)
    engine = make_engine(settings.database)
    upgrade(engine)
    service = IngestService(engine, settings)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        service.start()
    except Conflict as exc:
        typer.echo(f"taiqu headend ingest: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(f"ingest running as MQTT client {settings.mqtt.client_id!r}", err=True)
    done.wait()
    service.stop()
    engine.dispose()


@app.command()
def serve(
    config: ConfigOpt = None,
    host: str | None = None,
    port: int | None = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="API only")] = False,
    verbose: bool = False,
) -> None:
    """Run the API (and, unless disabled, the ingest) on uvicorn."""
    import uvicorn

    from headend.app import create_app, tune_gc

    _logging(verbose)
    settings = _settings(config)
    application = create_app(settings, ingest=False if no_ingest else None)
    tune_gc()
    uvicorn.run(
        application,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level="debug" if verbose else "info",
    )
