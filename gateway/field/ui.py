"""Shared pieces of the ``taiqu field`` commands: consoles, options, errors, line settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from gateway.bus.link import Line
from gateway.field.port import REFUSED, USAGE, FieldError
from gateway.field.reads import PROTOCOLS, ReadResult
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.modbus.registers import load_map

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

ProtocolOpt = typer.Option("dlt645-2007", "--protocol", "-p", help=", ".join(PROTOCOLS))
BaudOpt = typer.Option(None, "--baud", "-b", help="Baud rate (DL/T 645: 2400; Modbus: model's).")
ParityOpt = typer.Option(None, "--parity", help="E, N or O (DL/T 645: E; Modbus: model's).")
TimeoutOpt = typer.Option(1.0, "--timeout", "-t", help="Seconds to wait for a reply.")
JsonOpt = typer.Option(False, "--json", help="JSON for scripts instead of tables.")
PortArg = typer.Argument(..., help="Device, socket://HOST:PORT or rfc2217://HOST:PORT.")


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` on stderr; the ``Exit`` to raise with ``code``."""
    err.print(f"[red]taiqu field:[/red] {message}")
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn field and usage errors into one line on stderr and their exit code."""
    try:
        yield
    except FieldError as exc:
        raise fail(str(exc), exc.code) from None
    except (ValueError, LocalProtocolError) as exc:  # bad addresses, identifiers, maps
        raise fail(str(exc), USAGE) from None
    except RemoteProtocolError as exc:  # a reply no codec could make sense of
        raise fail(str(exc), REFUSED) from None


def line(baud: int, parity: str) -> Line:
    """``Line`` for baud and parity (8 data bits, 1 stop bit)."""
    parity = parity.upper()
    if parity not in ("E", "N", "O"):
        raise FieldError(f"parity {parity!r} is not E, N or O", USAGE)
    return Line.parse(f"{baud} 8{parity}1")


def bauds(text: str) -> list[int]:
    """``"1200,2400,9600"`` → baud rates."""
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise FieldError(
            f"{text!r} is not a list of baud rates like 1200,2400,9600", USAGE
        ) from None


def modbus_line(model: str, baud: int | None, parity: str | None) -> Line:
    """The line settings of a Modbus model (its factory settings unless given)."""
    serial = load_map(model).serial
    return line(baud or serial.baud, parity or serial.parity)


def value_text(values: dict[str, Any]) -> str:
    """``key = value`` lines."""
    return "\n".join(f"{k} = {v}" for k, v in values.items())


def result_json(result: ReadResult) -> dict[str, Any]:
    """A read as plain JSON values (frames in hex, round trip in ms)."""
    return {
        "item": result.item,
        "values": {k: str(v) for k, v in result.values.items()},
        "error": result.error or None,
        "rtt_ms": None if result.rtt is None else round(result.rtt * 1000, 3),
        "frames": [{"tx": e.tx.hex(), "rx": e.rx.hex()} for e in result.exchanges],
    }
