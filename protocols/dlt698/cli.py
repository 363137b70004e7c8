"""``taiqu dlt698``: decode captured frames to JSON and encode requests to hex (field tool).

Invalid input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import typer

from protocols.cli import FieldTool
from protocols.dlt698.apdu import (
    ActionRequestNormal,
    ConnectMechanism,
    ConnectRequest,
    GetRequestNormal,
    GetRequestNormalList,
    GetRequestRecord,
    ReleaseRequest,
    Request,
    SetRequestNormal,
)
from protocols.dlt698.axdr import NULL, Data
from protocols.dlt698.datetimes import DateTimeS
from protocols.dlt698.describe import describe_frame
from protocols.dlt698.descriptors import OAD, DataType
from protocols.dlt698.encoder import encode_apdu
from protocols.dlt698.frame import Frame, control_byte, encode_frame, server_address
from protocols.dlt698.objects import (
    CLOSE,
    DAILY_COLUMNS,
    FREEZE_TIME,
    KEEP_POWER,
    KEEP_POWER_RELEASE,
    TRIP,
)
from protocols.dlt698.selection import Selector1, Selector9
from protocols.dlt698.stream import StreamDecoder
from protocols.dlt698.values import close_parameter, trip_parameter
from protocols.errors import ProtocolError

_TOOL = FieldTool("dlt698", "DL/T 698.45")
app, encode_app = _TOOL.apps()
_ACTIONS = {
    "trip": (TRIP, trip_parameter()),
    "close": (CLOSE, close_parameter(direct=True)),
    "close-allowed": (CLOSE, close_parameter(direct=False)),
    "keep-power": (KEEP_POWER, NULL),
    "keep-power-release": (KEEP_POWER_RELEASE, NULL),
}


@app.command()
def decode(
    hex_: list[str] = typer.Argument(..., metavar="HEX...", help="Captured bytes (spaces ok)."),
    pretty: bool = typer.Option(False, help="Indent the JSON."),
) -> None:
    """Print every frame found in a capture as JSON (one object per line)."""
    _TOOL.print_frames(_TOOL.hex(hex_), StreamDecoder(), describe_frame, pretty)


AddressOpt = typer.Option(..., "--address", "-a", help="Meter address (AA… = wildcard).")
ClientOpt = typer.Option(0, "--client", help="Client address CA (0-255).")
PiidOpt = typer.Option(1, "--piid", help="PIID byte.")
PreambleOpt = typer.Option(4, help="Number of FE wake-up bytes.")


def _emit(address: str, request: Request, client: int, preamble: int) -> None:
    try:
        frame = Frame(
            control_byte(False, False), server_address(address), encode_apdu(request), client
        )
        wire = encode_frame(frame, preamble)
    except ProtocolError as exc:
        _TOOL.fail(str(exc))
    typer.echo(wire.hex(" ").upper())


def _oad(text: str) -> OAD:
    try:
        return OAD.parse(text)
    except ValueError as exc:
        _TOOL.fail(str(exc))


@encode_app.command("get")
def encode_get(
    address: str = AddressOpt,
    oad: list[str] = typer.Option(..., "--oad", "-o", help="OAD, e.g. 00100200 (repeatable)."),
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """GET-Request Normal (one OAD) or NormalList (several)."""
    oads = tuple(_oad(o) for o in oad)
    request: Request = (
        GetRequestNormal(piid, oads[0]) if len(oads) == 1 else GetRequestNormalList(piid, oads)
    )
    _emit(address, request, client, preamble)


@encode_app.command("record")
def encode_record(
    address: str = AddressOpt,
    oad: str = typer.Option("50040200", "--oad", "-o", help="Record attribute (daily freeze)."),
    freeze_time: str | None = typer.Option(None, help="Select by freeze time (ISO, local)."),
    last: int = typer.Option(1, help="Otherwise: the last-th record (Selector9)."),
    column: list[str] = typer.Option([], "--column", "-c", help="Column OADs (default: freeze)."),
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """GET-Request Record (daily freeze by freeze time, or the last-th record)."""
    target = _oad(oad)
    rsd = (
        Selector1(
            FREEZE_TIME,
            Data(
                DataType.DATE_TIME_S, DateTimeS.of(_TOOL.meter_time(freeze_time, "--freeze-time"))
            ),
        )
        if freeze_time
        else Selector9(last)
    )
    columns = tuple(_oad(c) for c in column) or (DAILY_COLUMNS if target.oi == 0x5004 else ())
    _emit(address, GetRequestRecord(piid, target, rsd, columns), client, preamble)


@encode_app.command("set-clock")
def encode_set_clock(
    address: str = AddressOpt,
    time: str | None = typer.Option(None, "--time", "-t", help="Meter-local ISO time (now)."),
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """SET-Request Normal of 40000200 (date and time)."""
    value = Data(DataType.DATE_TIME_S, DateTimeS.of(_TOOL.meter_time(time, "--time")))
    _emit(address, SetRequestNormal(piid, OAD(0x4000, 2), value), client, preamble)


@encode_app.command("action")
def encode_action(
    address: str = AddressOpt,
    action: str = typer.Option(
        ..., help="trip, close, close-allowed, keep-power or keep-power-release."
    ),
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """ACTION-Request Normal: relay (8000, first relay output F2050201) and keep-power (8001)."""
    chosen = _ACTIONS.get(action.lower())
    if chosen is None:
        _TOOL.fail(f"action {action!r} is not one of {', '.join(_ACTIONS)}")
    omd, parameter = chosen
    _emit(address, ActionRequestNormal(piid, omd, parameter), client, preamble)


@encode_app.command("connect")
def encode_connect(
    address: str = AddressOpt,
    password: str | None = typer.Option(None, help="Password association (default: public)."),
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """CONNECT-Request (public or password association)."""
    mechanism = ConnectMechanism(1, password=password) if password else ConnectMechanism()
    _emit(address, ConnectRequest(piid, mechanism=mechanism), client, preamble)


@encode_app.command("release")
def encode_release(
    address: str = AddressOpt,
    client: int = ClientOpt,
    piid: int = PiidOpt,
    preamble: int = PreambleOpt,
) -> None:
    """RELEASE-Request."""
    _emit(address, ReleaseRequest(piid), client, preamble)
