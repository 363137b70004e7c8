"""``taiqu clock``: print what time a clock setting gives now (to check processes agree)."""

from __future__ import annotations

import json
from datetime import datetime

import typer

from taiqu.clock import make_clock

app = typer.Typer(add_completion=False, no_args_is_help=False)


@app.command()
def now(
    start: datetime | None = typer.Option(None, help="Accelerated clock start (aware ISO time)."),
    factor: float = typer.Option(1.0, help="Acceleration factor."),
    anchor: datetime | None = typer.Option(None, help="Wall instant at which the clock = start."),
) -> None:
    """Print the clock's current time as ISO 8601."""
    setting = "real" if start is None else {"start": start, "factor": factor, "anchor": anchor}
    try:
        clock = make_clock(setting)
    except ValueError as exc:
        typer.echo(f"taiqu clock: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"now": clock.now().isoformat()}))
