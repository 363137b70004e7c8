"""``taiqu field read``: one or more reads from one meter."""

from __future__ import annotations

import json

import typer

from gateway.field.port import OK, USAGE, FieldError, Port
from gateway.field.reads import (
    PROTOCOLS,
    VERSIONS,
    ReadResult,
    parse_item,
    read_dlt645,
    read_modbus,
)
from gateway.field.ui import (
    BaudOpt,
    JsonOpt,
    ParityOpt,
    PortArg,
    ProtocolOpt,
    TimeoutOpt,
    errors,
    line,
    modbus_line,
    out,
    result_json,
    value_text,
)
from protocols.dlt645 import normalize_address


def read(
    port: str = PortArg,
    address: str = typer.Argument(..., help="Meter address (12 digits) or Modbus unit."),
    items: list[str] = typer.Argument(
        None, metavar="QUANTITY|DI...", help="Identifiers (hex) or quantities; Modbus: all."
    ),
    protocol: str = ProtocolOpt,
    baud: int | None = BaudOpt,
    parity: str | None = ParityOpt,
    model: str = typer.Option("", "--model", "-m", help="Modbus register map (SDM630 …)."),
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Read identifiers or quantities from one meter: values, raw frames, round-trip time."""
    with errors():
        if protocol not in PROTOCOLS:
            raise FieldError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}", USAGE)
        results: list[ReadResult]
        if protocol == "modbus":
            if not model:
                raise FieldError("a Modbus read needs --model (the register map)", USAGE)
            if not address.isdigit() or not 1 <= int(address) <= 247:
                raise FieldError(f"Modbus unit {address!r} is not 1…247", USAGE)
            with Port(port, modbus_line(model, baud, parity)) as p:
                results = read_modbus(p, int(address), model, items or [], timeout)
        else:
            version = VERSIONS[protocol]
            if not items:
                raise FieldError("name at least one identifier or quantity to read", USAGE)
            dis = [parse_item(i, version) for i in items]
            meter = normalize_address(address)
            with Port(port, line(baud or 2400, parity or "E")) as p:
                results = [read_dlt645(p, meter, di, version, timeout) for di in dis]
    if as_json:
        out.print_json(json.dumps([result_json(r) for r in results]))
    else:
        out.print(f"[bold]{protocol} {address} on {port}[/bold]")
        for r in results:
            ms = "no answer" if r.rtt is None else f"{r.rtt * 1000:.1f} ms"
            value = value_text(r.values) if not r.error else f"[red]{r.error}[/red]"
            out.print(f"[cyan]{r.item}[/cyan]  {ms}")
            out.print("  " + value.replace("\n", "\n  "))
            for e in r.exchanges:
                out.print(f"  TX {e.tx.hex(' ')}", markup=False)
                out.print(f"  RX {e.rx.hex(' ') or '—'}", markup=False)
    codes = [r.code for r in results if r.code != OK]
    raise typer.Exit(max(codes) if codes else OK)
