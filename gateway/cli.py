"""``taiqu gateway``: run the daemon, or check a configuration file.

A bad configuration prints one line per problem (file, key, fix) and exits with status 2 (the
systemd unit does not restart on 2); never a traceback.  A runtime failure exits with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import typer

from gateway.config import ConfigError, GatewayConfig, config_hash, load_config
from gateway.config.secrets import resolve_secrets
from gateway.errors import GatewayError

app = typer.Typer(help="The concentrator daemon.", no_args_is_help=True, add_completion=False)
CONFIG = typer.Option(Path("gateway.toml"), "--config", "-c", help="Path of gateway.toml.")


def _load(path: Path) -> GatewayConfig:
    try:
        cfg = load_config(path)
        resolve_secrets(cfg, path)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(f"taiqu gateway: {line}", err=True)
        raise typer.Exit(2) from None
    return cfg


@app.command("check-config")
def check_config(config: Path = CONFIG) -> None:
    """Validate gateway.toml and print a summary."""
    cfg = _load(config)
    from gateway.config.budget import bus_utilisation, config_warnings

    for line in config_warnings(cfg, where=str(config)):
        typer.echo(f"taiqu gateway: warning: {line}", err=True)
    busy = ", ".join(f"{b} {u:.0%}" for b, u in bus_utilisation(cfg).items())
    typer.echo(
        f"{config}: ok: gateway {cfg.gateway_id}, {len(cfg.buses)} buses, "
        f"{len(cfg.meters)} meters, energy every {cfg.schedule.energy_minutes} min; "
        f"predicted bus use {busy}"
    )


M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Keep glibc to ``arenas`` malloc arenas: each thread (bus workers, the commit thread, the
    uplink's) would otherwise grow an arena of its own, and freed memory in one is no use to the
    others — a concentrator's RSS, not its speed (the GIL serialises the work anyway).  Same as
    ``MALLOC_ARENA_MAX``; no-op off glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


@app.command("run")
def run(
    config: Path = CONFIG,
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
) -> None:
    """Poll the meters and publish their readings until SIGTERM."""
    cfg = _load(config)
    limit_malloc_arenas()
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from gateway.daemon.app import Gateway

    gateway = Gateway(cfg, config_path=config, config_hash=config_hash(config))
    try:
        asyncio.run(gateway.run())
    except ConfigError as exc:  # found at start-up (e.g. an unreadable trust file): no restart loop
        typer.echo(f"taiqu gateway: {exc}", err=True)
        raise typer.Exit(2) from None
    except GatewayError as exc:
        typer.echo(f"taiqu gateway: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a bug: the journal gets the traceback, systemd restarts us
        logging.getLogger("gateway").critical("the gateway stopped on an error", exc_info=True)
        typer.echo(f"taiqu gateway: stopped on an internal error: {exc!r}", err=True)
        raise typer.Exit(1) from None
