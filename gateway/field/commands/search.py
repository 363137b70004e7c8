"""``taiqu field search``: every meter on a bus (DL/T 645 wildcard search, Modbus unit scan)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.field.output import archive_csv, gateway_toml, meter_id
from gateway.field.port import NO_ANSWER, OK, USAGE, FieldError, Port
from gateway.field.reads import VERSIONS
from gateway.field.search import (
    STEPS,
    FoundMeter,
    SearchStats,
    parse_units,
    scan_modbus,
    search_dlt645,
)
from gateway.field.ui import JsonOpt, PortArg, bauds, err, errors, line, modbus_line, out


def search(
    port: str = PortArg,
    baud_list: str = typer.Option("1200,2400,9600", "--bauds", help="Baud rates to search at."),
    parity: str = typer.Option("E", "--parity", help="DL/T 645 parity (E; some meters N)."),
    step: str = typer.Option(
        "byte", "--step", help="Narrow a collision by byte (the standard's AAH) or digit."
    ),
    protocols: str = typer.Option(
        "dlt645-2007,dlt645-1997", "--protocols", help="DL/T 645 editions to search ('' none)."
    ),
    modbus: str = typer.Option("", "--modbus", help="Modbus units to scan, e.g. 1-247."),
    model: str = typer.Option("", "--model", "-m", help="Modbus register map for the scan."),
    modbus_baud: int | None = typer.Option(None, "--modbus-baud", help="Default: model's."),
    modbus_parity: str | None = typer.Option(None, "--modbus-parity", help="Default: model's."),
    timeout: float = typer.Option(
        0.6, "--timeout", "-t", help="Response window per request (DL/T 645 allows 500 ms)."
    ),
    bus: str = typer.Option("bus1", "--bus", help="Bus name for the rows written."),
    area: str = typer.Option("", "--area", help="Area for --write-csv (required there)."),
    write_toml: Path | None = typer.Option(None, "--write-toml", help="gateway.toml rows."),
    write_csv: Path | None = typer.Option(None, "--write-csv", help="Head-end archive CSV."),
    as_json: bool = JsonOpt,
) -> None:
    """Find every meter on a bus and list it (optionally as gateway.toml rows or archive CSV)."""
    found: list[FoundMeter] = []
    stats = SearchStats()
    started = time.monotonic()
    with errors():
        editions = [p.strip() for p in protocols.split(",") if p.strip()]
        unknown = [p for p in editions if p not in VERSIONS]
        if unknown:
            raise FieldError(f"unknown edition(s) {unknown}: use {', '.join(VERSIONS)}", USAGE)
        if step not in STEPS:
            raise FieldError(f"--step {step!r}: byte or digit", USAGE)
        if modbus and not model:
            raise FieldError("--modbus needs --model (which register to ask for)", USAGE)
        if write_csv is not None and not area:
            raise FieldError("--write-csv needs --area (the archive's area of these meters)", USAGE)
        units = parse_units(modbus) if modbus else []
        rates = bauds(baud_list) if editions else []
        first_line = (
            line(rates[0], parity) if rates else modbus_line(model, modbus_baud, modbus_parity)
        )
        with (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),  # a bar where the count is known (Modbus units), else a pulse
                TextColumn("{task.completed} requests"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=as_json,
            ) as bar,
            Port(port, first_line) as p,
        ):
            task = bar.add_task("searching", total=None)
            seen: set[tuple[str, str]] = set()
            for edition in editions:
                for rate in rates:
                    settings = line(rate, parity)
                    p.configure(settings)
                    bar.update(task, description=f"{edition} at {settings}")
                    for address in search_dlt645(
                        p, VERSIONS[edition], timeout, stats, lambda _: bar.advance(task), step
                    ):
                        if (edition, address) not in seen:  # over socket:// every baud hears all
                            seen.add((edition, address))
                            found.append(FoundMeter(edition, address, str(settings)))
            if units:
                settings = modbus_line(model, modbus_baud, modbus_parity)
                p.configure(settings)
                scan = bar.add_task(f"Modbus units at {settings}", total=len(units))
                bar.update(task, visible=False)
                for unit in scan_modbus(
                    p, units, model, timeout, stats, lambda _: bar.advance(scan)
                ):
                    found.append(FoundMeter("modbus", str(unit), str(settings), model.upper()))
    elapsed = time.monotonic() - started
    if write_toml is not None:
        write_toml.write_text(gateway_toml(found, bus, port), encoding="utf-8")
    if write_csv is not None:
        write_csv.write_text(archive_csv(found, bus, area), encoding="utf-8")
    summary = {
        "requests": stats.probes,
        "garbled": stats.collisions,
        "silent": stats.silent,
        "unresolved": stats.unresolved,
        "tx_bytes": stats.tx_bytes,
        "rx_bytes": stats.rx_bytes,
        "seconds": round(elapsed, 3),
    }
    if as_json:
        meters = [
            {
                "id": meter_id(m, bus),
                "protocol": m.protocol,
                "address": m.address,
                "line": m.line,
                "model": m.model,
            }
            for m in found
        ]
        out.print_json(json.dumps({"meters": meters, "search": summary}))
    else:
        table = Table(title=f"{len(found)} meter(s) on {port}")
        for column in ("#", "protocol", "address", "line", "model"):
            table.add_column(column)
        for n, m in enumerate(found, start=1):
            table.add_row(str(n), m.protocol, m.address, m.line, m.model or "—")
        out.print(table)
        out.print(
            f"{stats.probes} requests ({stats.collisions} garbled, {stats.silent} silent), "
            f"{stats.tx_bytes} bytes sent, {stats.rx_bytes} received, {elapsed:.1f} s"
        )
        for pattern in stats.unresolved:
            out.print(f"[yellow]{pattern}: still garbled at a full address (line noise?)[/yellow]")
    raise typer.Exit(OK if found else NO_ANSWER)
