"""``taiqu dlt645``: decode captured frames to JSON and encode requests to hex (field tool).

Invalid input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from protocols.cli import FieldTool
from protocols.dlt645.codec import encode_request
from protocols.dlt645.control import Version
from protocols.dlt645.data_ids import find_data_id, parse_di
from protocols.dlt645.describe import describe_frame
from protocols.dlt645.frame import encode_frame, normalize_address
from protocols.dlt645.messages import (
    DEFAULT_OPERATOR,
    DEFAULT_PASSWORD,
    BroadcastTimeSync,
    ChangeBaud,
    ControlAction,
    Freeze,
    ReadAddress,
    ReadData,
    ReadFollowUp,
    RemoteControl,
    Request,
    WriteAddress,
    WriteData,
)
from protocols.dlt645.stream import StreamDecoder
from protocols.errors import ProtocolError
from protocols.model import DEFAULT_METER_ZONE

_TOOL = FieldTool("dlt645", "DL/T 645")
app, encode_app = _TOOL.apps()
VERSIONS = {"2007": Version.V2007, "1997": Version.V1997, "auto": None}


def _version(name: str) -> Version | None:
    if name not in VERSIONS:
        _TOOL.fail(f"version {name!r} is not one of {', '.join(VERSIONS)}")
    return VERSIONS[name]


@app.command()
def decode(
    hex_: list[str] = typer.Argument(None, metavar="HEX...", help="Captured bytes (spaces ok)."),
    version: str = typer.Option("auto", "--version", "-v", help="2007, 1997 or auto."),
    zone: str = typer.Option(DEFAULT_METER_ZONE, help="Time zone of the meters' clocks."),
    pretty: bool = typer.Option(False, help="Indent the JSON."),
    capture: Path | None = typer.Option(
        None, "--capture", help="A `taiqu field monitor --capture` file instead of HEX."
    ),
) -> None:
    """Print every frame found in a capture as JSON (one object per line)."""
    chosen = _version(version)
    if capture is not None:
        if hex_:
            _TOOL.fail("give HEX or --capture, not both")
        _decode_capture(capture, chosen, zone, pretty)
        return
    if not hex_:
        _TOOL.fail("no hex given")
    _TOOL.print_frames(
        _TOOL.hex(hex_), StreamDecoder(), lambda f: describe_frame(f, chosen, zone), pretty
    )


def _decode_capture(path: Path, version: Version | None, zone: str, pretty: bool) -> None:
    """Lines ``TIME req|rep|noise HEX`` (``#`` comments): each frame with its time and direction."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _TOOL.fail(f"cannot read {path}: {exc.strerror or exc}")
    found = noise = 0
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 3 or parts[1] not in ("req", "rep", "noise"):
            _TOOL.fail(f"{path}:{n}: not a capture line (TIME req|rep|noise HEX)")
        try:
            raw = bytes.fromhex(parts[2])
        except ValueError:
            _TOOL.fail(f"{path}:{n}: {parts[2][:40]!r} is not hex")
        stream = StreamDecoder()
        stream.feed(raw)
        stream.feed_eof()
        frames = list(stream)
        if not frames:
            noise += len(raw)
        for frame in frames:
            found += 1
            out = {"time": parts[0], "direction": parts[1], **describe_frame(frame, version, zone)}
            typer.echo(json.dumps(out, ensure_ascii=False, indent=2 if pretty else None))
    if not found:
        _TOOL.fail(f"no DL/T 645 frame in {path}")
    if noise:
        _TOOL.note(f"{noise} bytes of noise or other protocols skipped")


def _emit(request: Request, version: str, preamble: int) -> None:
    chosen = _version(version) or Version.V2007
    try:
        frame = encode_request(request, chosen)
        wire = encode_frame(frame, preamble)
    except ProtocolError as exc:
        _TOOL.fail(str(exc))
    typer.echo(wire.hex(" ").upper())


def _addr(text: str) -> str:
    try:
        return normalize_address(text)
    except ProtocolError as exc:
        _TOOL.fail(str(exc))


def _di(text: str, version: str) -> int:
    try:
        return parse_di(text, _version(version) or Version.V2007)
    except ValueError as exc:
        _TOOL.fail(str(exc))


AddressOpt = typer.Option(..., "--address", "-a", help="Meter address, nameplate order.")
VersionOpt = typer.Option("2007", "--version", "-v", help="2007 or 1997.")
PreambleOpt = typer.Option(4, help="Number of FE wake-up bytes.")


@encode_app.command("read")
def encode_read(
    address: str = AddressOpt,
    di: str = typer.Option(..., "--di", "-d", help="Data identifier, e.g. 00010000 or 9010."),
    version: str = VersionOpt,
    preamble: int = PreambleOpt,
) -> None:
    """Read data (11H; 1997: 01H)."""
    _emit(ReadData(_addr(address), _di(di, version)), version, preamble)


@encode_app.command("follow-up")
def encode_follow_up(
    address: str = AddressOpt,
    di: str = typer.Option(..., "--di", "-d"),
    seq: int = typer.Option(1, help="Frame sequence number."),
    version: str = VersionOpt,
    preamble: int = PreambleOpt,
) -> None:
    """Read the next frame of a multi-frame reply (12H)."""
    _emit(ReadFollowUp(_addr(address), _di(di, version), seq), version, preamble)


@encode_app.command("read-address")
def encode_read_address(preamble: int = PreambleOpt) -> None:
    """Read the address of the only meter on the bus (13H)."""
    _emit(ReadAddress(), "2007", preamble)


@encode_app.command("write-address")
def encode_write_address(
    new_address: str = typer.Option(..., "--new-address"), preamble: int = PreambleOpt
) -> None:
    """Set the address of the only meter on the bus (15H)."""
    _emit(WriteAddress(_addr(new_address)), "2007", preamble)


@encode_app.command("time-sync")
def encode_time_sync(
    time: str | None = typer.Option(None, "--time", "-t", help="Meter-local ISO time (now)."),
    version: str = VersionOpt,
    preamble: int = PreambleOpt,
) -> None:
    """Broadcast time sync (08H)."""
    _emit(BroadcastTimeSync(_TOOL.meter_time(time, "--time")), version, preamble)


def _write_value(di: int, version: Version, text: str) -> Any:
    if text.lower().startswith("raw:"):
        return _TOOL.hex([text[4:]])
    row = find_data_id(di, version)
    if row is None:
        _TOOL.fail(f"data identifier {version.di_hex(di)} is not known: give the value as raw:HEX")
    if row.members:
        _TOOL.fail(f"{row.hex} is a block: give the value as raw:HEX")
    fmt = row.layout.fmt
    if fmt.startswith("YY") and fmt != "YYMMDDWW":
        return _TOOL.meter_time(text, "--value")
    if fmt in ("YYMMDDWW", "hhmmss"):
        when = datetime.fromisoformat(f"2000-01-01T{text}" if fmt == "hhmmss" else text)
        return when.time() if fmt == "hhmmss" else when.date()
    return text


@encode_app.command("write")
def encode_write(
    address: str = AddressOpt,
    di: str = typer.Option(..., "--di", "-d"),
    value: str = typer.Option(..., help="Value (number, digits, ISO time) or raw:HEX."),
    password: str = typer.Option(DEFAULT_PASSWORD, help="Level + password, LLPPPPPP."),
    operator: str = typer.Option(DEFAULT_OPERATOR, help="Operator code, 8 hex digits."),
    version: str = VersionOpt,
    preamble: int = PreambleOpt,
) -> None:
    """Write data (14H; 1997: 04H)."""
    code = _di(di, version)
    try:
        typed = _write_value(code, _version(version) or Version.V2007, value)
    except ValueError as exc:
        _TOOL.fail(str(exc))
    _emit(WriteData(_addr(address), code, typed, password, operator), version, preamble)


@encode_app.command("freeze")
def encode_freeze(
    address: str = typer.Option("999999999999", "--address", "-a", help="Default: broadcast."),
    when: str = typer.Option("99999999", help="MMDDhhmm, 99 = any (99999999 = now)."),
    preamble: int = PreambleOpt,
) -> None:
    """Freeze (16H)."""
    from protocols.dlt645.messages import FreezeTime

    text = when.replace(" ", "")
    if len(text) != 8 or not text.isdigit():
        _TOOL.fail(f"--when {when!r} is not 8 digits MMDDhhmm")
    parts = [None if text[i : i + 2] == "99" else int(text[i : i + 2]) for i in (0, 2, 4, 6)]
    _emit(Freeze(_addr(address), FreezeTime(*parts)), "2007", preamble)


@encode_app.command("baud")
def encode_baud(
    address: str = AddressOpt,
    baud: int = typer.Option(..., help="600, 1200, 2400, 4800, 9600 or 19200."),
    version: str = VersionOpt,
    preamble: int = PreambleOpt,
) -> None:
    """Change baud rate (17H)."""
    _emit(ChangeBaud(_addr(address), baud), version, preamble)


@encode_app.command("control")
def encode_control(
    address: str = AddressOpt,
    action: str = typer.Option(
        ...,
        help="trip, close_allowed, close_direct, alarm, alarm_release, keep_power, "
        "keep_power_release.",
    ),
    valid_until: str | None = typer.Option(None, help="Meter-local ISO time (default: now)."),
    password: str = typer.Option(DEFAULT_PASSWORD, help="Level + password, LLPPPPPP."),
    operator: str = typer.Option(DEFAULT_OPERATOR, help="Operator code, 8 hex digits."),
    preamble: int = PreambleOpt,
) -> None:
    """Remote control (1CH, plaintext)."""
    try:
        chosen = ControlAction[action.upper().replace("-", "_")]
    except KeyError:
        names = ", ".join(a.name.lower() for a in ControlAction)
        _TOOL.fail(f"action {action!r} is not one of {names}")
    until = _TOOL.meter_time(valid_until, "--valid-until")
    _emit(RemoteControl(_addr(address), chosen, password, operator, until), "2007", preamble)
