"""What the security commands share: the configuration options, ``[security]``, errors.

Paths default to ``[security]`` of the configuration file (``headend.security.settings``); every
option overrides its key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headend.config import load_settings
from headend.db.errors import HeadendError
from headend.security.settings import SecuritySettings

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="headend.toml (defaults apply without one)")
]
DirOpt = Annotated[Path | None, typer.Option(help="overrides the [security] key of that name")]


def security_settings(config: Path | None) -> SecuritySettings:
    """``[security]`` of ``config`` (exit 2 with the problems if the configuration is bad)."""
    try:
        settings = load_settings(config)
        return SecuritySettings.from_extra(settings.extra, settings.source or "defaults")
    except HeadendError as exc:
        typer.echo(f"taiqu headend: bad configuration\n{exc}", err=True)
        raise typer.Exit(2) from None


def fail(command: str, exc: Exception) -> typer.Exit:
    """Print ``exc`` for ``taiqu headend <command>``; the exit (status 2) to raise."""
    typer.echo(f"taiqu headend {command}: {exc}", err=True)
    return typer.Exit(2)
