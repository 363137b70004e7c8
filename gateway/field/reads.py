"""Reads for the field tools: one identifier (DL/T 645) or quantities (Modbus map) of one meter.

Each read keeps its raw exchanges (TX/RX hex, round-trip time) next to the decoded values, so
a wrong parity or protocol version shows as what it is: silence, noise or a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.field.port import NO_ANSWER, OK, REFUSED, USAGE, Exchange, FieldError, Port
from gateway.polling.dlt645 import flatten
from protocols.dlt645 import (
    DATA_IDS,
    NEED_DATA,
    AbnormalReply,
    Master,
    ReadData,
    ReadReply,
    Version,
    join_replies,
    parse_di,
)
from protocols.dlt645.errors import Dlt645Error
from protocols.modbus.connection import ModbusMaster
from protocols.modbus.errors import ModbusError, ModbusUsageError
from protocols.modbus.messages import NEED_DATA as MODBUS_NEED_DATA
from protocols.modbus.messages import ExceptionResponse, ReadRegisters, RegistersResponse
from protocols.modbus.registers import decode_block, load_map, plan_reads
from protocols.model import DEFAULT_METER_ZONE

VERSIONS = {"dlt645-2007": Version.V2007, "dlt645-1997": Version.V1997}
PROTOCOLS = (*VERSIONS, "modbus")
MAX_FOLLOW_UPS = 16


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of one read: values, or why not, with every exchange it took."""

    item: str
    values: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    code: int = OK
    exchanges: tuple[Exchange, ...] = ()

    @property
    def rtt(self) -> float | None:
        """Seconds from the first request to the last reply byte (None: no answer)."""
        times = [e.rtt for e in self.exchanges if e.rtt is not None]
        return sum(times) if times else None


def _key_index(version: Version) -> dict[str, int]:
    out: dict[str, int] = {}
    for di, row in DATA_IDS[version].items():
        if row.period == "current" and not row.is_block:
            for name in (row.quantity, row.key):
                if name:
                    out.setdefault(name, di)
    return out


def parse_item(text: str, version: Version) -> int:
    """An identifier in hex (``00010000``, ``9010``) or a quantity / key name of the table."""
    index = _key_index(version)
    if text in index:
        return index[text]
    try:
        return parse_di(text, version)
    except ValueError:
        raise FieldError(
            f"{text!r} is neither a {version.value} data identifier (hex) nor a quantity of "
            "its table (e.g. energy.active.import.total, meter.time, status.word3)",
            USAGE,
        ) from None


def read_dlt645(
    port: Port, address: str, di: int, version: Version, timeout: float, zone: str = ""
) -> ReadResult:
    """Read identifier ``di`` (follow-up frames included) from ``address``."""
    zone = zone or DEFAULT_METER_ZONE
    item = version.di_hex(di)
    master = Master(version, zone)
    frames: list[ReadReply] = []
    exchanges: list[Exchange] = []
    request: Any = ReadData(address, di, version)
    for _ in range(MAX_FOLLOW_UPS):
        frame = master.send(request)
        exchange, reply = _dlt645_exchange(port, master, frame, timeout)
        exchanges.append(exchange)
        if isinstance(reply, Exception):
            return ReadResult(
                item, error=f"undecodable reply: {reply}", code=REFUSED, exchanges=tuple(exchanges)
            )
        if reply is None:
            why = (
                "no answer"
                if not exchange.rx
                else f"no valid reply ({len(exchange.rx)} bytes of noise)"
            )
            return ReadResult(item, error=why, code=NO_ANSWER, exchanges=tuple(exchanges))
        if isinstance(reply, AbnormalReply):
            reasons = ", ".join(reply.reasons) or f"error 0x{reply.error:02X}"
            return ReadResult(
                item, error=f"refused: {reasons}", code=REFUSED, exchanges=tuple(exchanges)
            )
        if not isinstance(reply, ReadReply):
            return ReadResult(
                item,
                error=f"unexpected {type(reply).__name__}",
                code=REFUSED,
                exchanges=tuple(exchanges),
            )
        frames.append(reply)
        if not reply.follow_up:
            break
        request = master.follow_up(reply)
    try:
        joined = frames[0] if len(frames) == 1 else join_replies(frames, zone)
    except Dlt645Error as exc:
        return ReadResult(item, error=str(exc), code=REFUSED, exchanges=tuple(exchanges))
    values = flatten(joined.values) or {"raw": (joined.raw or b"").hex(" ")}
    return ReadResult(item, values, exchanges=tuple(exchanges))


def _dlt645_exchange(
    port: Port, master: Master, frame: bytes, timeout: float
) -> tuple[Exchange, Any]:
    got: list[Any] = []
    fed = [0]

    def done(rx: bytes) -> bool:
        master.receive_data(rx[fed[0] :])
        fed[0] = len(rx)
        try:
            event = master.next_event()
        except Dlt645Error as exc:
            got.append(exc)
            return True
        if event is NEED_DATA:
            return False
        got.append(event)
        return True

    exchange = port.transact(frame, timeout, done)
    if not got:
        master.abandon()
    return exchange, (got[0] if got else None)


def read_modbus(
    port: Port, unit: int, model: str, quantities: Sequence[str], timeout: float
) -> list[ReadResult]:
    """Read ``quantities`` (all of the map when empty) of Modbus ``unit`` in the fewest blocks."""
    try:
        meter_map = load_map(model)
        plan = plan_reads(meter_map, quantities or None)
    except (ModbusError, ModbusUsageError) as exc:
        raise FieldError(str(exc), USAGE) from exc
    results = []
    for block in plan:
        request = block.request(unit)
        item = f"{block.function}:{block.address}+{block.count}"
        exchange, response = modbus_exchange(port, request, timeout)
        if response is None:
            why = "no answer" if not exchange.rx else f"no valid reply ({len(exchange.rx)} bytes)"
            results.append(ReadResult(item, error=why, code=NO_ANSWER, exchanges=(exchange,)))
        elif isinstance(response, ExceptionResponse):
            results.append(
                ReadResult(
                    item,
                    error=f"exception {response.code} ({response.name})",
                    code=REFUSED,
                    exchanges=(exchange,),
                )
            )
        else:
            values = decode_block(
                meter_map, block.function, block.address, response.registers, block.quantities
            )
            results.append(ReadResult(item, dict(values), exchanges=(exchange,)))
    return results


def modbus_exchange(
    port: Port, request: ReadRegisters, timeout: float
) -> tuple[Exchange, RegistersResponse | ExceptionResponse | None]:
    """One Modbus request; the matching response or None."""
    master = ModbusMaster()
    got: list[RegistersResponse | ExceptionResponse] = []
    fed = [0]

    def done(rx: bytes) -> bool:
        master.receive_data(rx[fed[0] :])
        fed[0] = len(rx)
        while (event := master.next_event()) is not MODBUS_NEED_DATA:
            if isinstance(event, RegistersResponse | ExceptionResponse) and request.matches(event):
                got.append(event)
                return True
        return False

    exchange = port.transact(master.send(request), timeout, done)
    return exchange, (got[0] if got else None)
