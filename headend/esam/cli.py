"""``taiqu headend esam-lab-key``: the laboratory ESAM master key (NOT FOR PRODUCTION)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def esam_lab_key(
    path: Annotated[Path, typer.Argument(help="the key file to create (0600, never overwritten)")],
) -> None:
    """Create the laboratory ESAM master key (labs, tests, the demo: NOT FOR PRODUCTION)."""
    from headend.esam.software import create_key_file

    try:
        create_key_file(path)
    except OSError as exc:
        typer.echo(f"taiqu headend esam-lab-key: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"laboratory ESAM master key written to {path} (0600): NOT FOR PRODUCTION; use it with "
        "[esam] service = 'software', production = false, and the simulator's ESAM meters"
    )
