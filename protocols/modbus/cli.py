"""``taiqu modbus``: the field engineer's tool for Modbus meter maps and RTU frames.

Invalid input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from protocols.cli import FieldTool
from protocols.errors import ProtocolError
from protocols.modbus import registers

app = typer.Typer(
    name="modbus",
    help="Inspect Modbus meter register maps, decode and encode RTU frames.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
encode_app = typer.Typer(help="Build RTU request frames.", no_args_is_help=True)
app.add_typer(encode_app, name="encode")

F = TypeVar("F", bound=Callable[..., Any])


_TOOL = FieldTool("modbus", "Modbus RTU")


def _guard(func: F) -> F:
    """Turn codec errors and bad values into one stderr line and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ProtocolError, ValueError) as exc:
            _TOOL.fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _int(text: str) -> int:
    """An integer written in decimal or with a 0x prefix."""
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer (decimal or 0x…)") from None


def _json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@app.command("maps")
@_guard
def maps_command() -> None:
    """List the meter models that have a register map."""
    for model in registers.models():
        meter = registers.load_map(model)
        s = meter.serial
        print(
            f"{meter.model:<8} {meter.title}  [{s.baud} {s.data_bits}{s.parity}{s.stop_bits}, "
            f"units {s.unit_min}…{s.unit_max}, {len(meter.registers)} quantities]"
        )


@app.command("map")
@_guard
def map_command(
    model: Annotated[str, typer.Argument(help="Meter model, e.g. SDM630.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the map as JSON.")] = False,
) -> None:
    """Print a model's register map."""
    meter = registers.load_map(model)
    if as_json:
        _json(
            {
                "model": meter.model,
                "vendor": meter.vendor,
                "title": meter.title,
                "phases": meter.phases,
                "serial": {
                    "baud": meter.serial.baud,
                    "parity": meter.serial.parity,
                    "data_bits": meter.serial.data_bits,
                    "stop_bits": meter.serial.stop_bits,
                    "baud_options": list(meter.serial.baud_options),
                    "unit_ids": [meter.serial.unit_min, meter.serial.unit_max],
                },
                "sources": list(meter.sources),
                "registers": [
                    {
                        "quantity": r.quantity,
                        "address": r.address,
                        "function": r.function,
                        "type": r.type,
                        "word_order": r.word_order,
                        "scale": str(r.scale),
                        "unit": r.unit,
                        "resolution": str(r.resolution),
                    }
                    for r in meter.registers
                ],
            }
        )
        return
    s = meter.serial
    print(f"{meter.title} ({meter.vendor} {meter.model}), {meter.phases} phase(s)")
    print(
        f"serial: {s.baud} bd {s.data_bits}{s.parity}{s.stop_bits}, unit ids {s.unit_min}…"
        f"{s.unit_max} (default {s.default_unit}); options {list(s.baud_options)}"
    )
    print(f"{'quantity':<30} {'fc':>2} {'addr':>6} {'type':<8} {'order':<6} {'scale':>6} unit")
    for r in meter.registers:
        print(
            f"{r.quantity:<30} {r.function:>2} 0x{r.address:04X} {r.type:<8} {r.word_order:<6} "
            f"{r.scale!s:>6} {r.unit}"
        )
    print("sources:")
    for source in meter.sources:
        print(f"  - {source}")


@app.command("decode")
@_guard
def decode_command(
    frame_hex: Annotated[str, typer.Argument(metavar="HEX", help="One RTU frame, hex.")],
    model: Annotated[str | None, typer.Option("--model", help="Map registers with it.")] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="First register the response answers.")
    ] = None,
) -> None:
    """Decode one RTU frame; with --model and --address, its registers as quantities (JSON)."""
    from protocols.modbus.messages import ExceptionResponse, ReadRegisters
    from protocols.modbus.rtu import decode_frame

    try:
        frame = bytes.fromhex(frame_hex.replace(":", " "))
    except ValueError:
        raise ValueError(f"{frame_hex!r} is not hexadecimal") from None
    if (model is None) != (address is None):
        raise ValueError("--model and --address go together")
    decoded = decode_frame(frame)
    message = decoded.message
    out: dict[str, Any] = {"kind": decoded.kind, "unit": message.unit, "function": message.function}
    if isinstance(message, ReadRegisters):
        out |= {"address": message.address, "count": message.count}
    elif isinstance(message, ExceptionResponse):
        out |= {"code": message.code, "name": message.name}
    elif decoded.kind == "illegal_request":
        out |= {"exception_code": message.code}  # type: ignore[union-attr]
    else:
        regs = list(message.registers)  # type: ignore[union-attr]
        out["registers"] = regs
        if model is not None and address is not None:
            values = registers.decode_block(model, message.function, _int(address), regs)
            out["values"] = {q: str(v) for q, v in values.items()}
    _json(out)


@encode_app.command("read")
@_guard
def encode_read_command(
    unit: Annotated[str, typer.Option("--unit", help="Meter unit id, 1…247.")],
    model: Annotated[str, typer.Option("--model", help="Meter model, e.g. DTSU666.")],
    quantity: Annotated[
        list[str] | None, typer.Option("--quantity", help="Quantity to read (repeatable).")
    ] = None,
) -> None:
    """Print the request frames (hex, one a line) of the planned reads."""
    for block in registers.plan_reads(model, quantity or None):
        from protocols.modbus.rtu import encode_request

        frame = encode_request(block.request(_int(unit)))
        print(
            f"{frame.hex(' ').upper()}  # fc {block.function} @0x{block.address:04X} "
            f"x{block.count}: {', '.join(block.quantities)}"
        )
