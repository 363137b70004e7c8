"""``taiqu field probe``: edition, working line settings, clock and relay of one meter."""

from __future__ import annotations

import json

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from gateway.field.port import USAGE, FieldError, Port
from gateway.field.probe import candidate_lines
from gateway.field.probe import probe as run_probe
from gateway.field.reads import VERSIONS
from gateway.field.ui import JsonOpt, PortArg, bauds, err, errors, out, result_json, value_text
from protocols.dlt645 import normalize_address


def probe(
    port: str = PortArg,
    address: str = typer.Argument(..., help="Meter address (12 digits)."),
    baud_list: str = typer.Option("2400,1200,9600,4800", "--bauds", help="Baud rates to try."),
    parities: str = typer.Option("EN", "--parities", help="Parities to try (E, N, O)."),
    protocols: str = typer.Option("dlt645-2007,dlt645-1997", "--protocols", help="Editions."),
    timeout: float = typer.Option(0.8, "--timeout", "-t", help="Seconds to wait per request."),
    as_json: bool = JsonOpt,
) -> None:
    """Which edition and line settings a DL/T 645 meter answers at; its clock and relay."""
    with errors():
        meter = normalize_address(address)
        editions = [p.strip() for p in protocols.split(",") if p.strip()]
        if not editions or any(p not in VERSIONS for p in editions):
            raise FieldError(f"--protocols takes {', '.join(VERSIONS)}", USAGE)
        if any(c not in "ENO" for c in parities.upper()) or not parities:
            raise FieldError(f"--parities {parities!r}: letters E, N, O", USAGE)
        lines = candidate_lines(bauds(baud_list), parities.upper())
        with (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                console=err,
                transient=True,
                disable=as_json,
            ) as bar,
            Port(port, lines[0]) as p,
        ):
            task = bar.add_task("probing", total=None)
            result = run_probe(
                p,
                meter,
                lines,
                timeout,
                [VERSIONS[e] for e in editions],
                lambda what: bar.update(task, description=f"trying {what}"),
            )
    if "://" in port and port.startswith("socket://"):
        note = "socket://: line settings are the server's, every line tried was the same one"
    else:
        note = ""
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "address": meter,
                    "answers_at": [{"protocol": p, "line": s} for p, s in result.works],
                    "tried": result.tried,
                    "values": {k: str(v) for k, v in result.values.items()},
                    "reads": [result_json(r) for r in result.reads],
                    "note": note or None,
                }
            )
        )
    else:
        if not result.works:
            err.print(f"[red]{meter} answered at none of {result.tried} settings tried[/red]")
        table = Table(title=f"{meter} on {port}")
        table.add_column("answers at")
        table.add_column("learned")
        table.add_row(
            "\n".join(f"{p} {s}" for p, s in result.works) or "—", value_text(result.values)
        )
        out.print(table)
        if note:
            out.print(f"[yellow]{note}[/yellow]")
    raise typer.Exit(result.code)
