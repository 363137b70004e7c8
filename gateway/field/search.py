"""Finding the meters on a bus (搜表).

DL/T 645-2007 §4.1.2 (address field): a meter answers a request whose address has its low
digits and ``AAH`` in the remaining high bytes ("abbreviated addressing", for reads) with its
real address; read communication address (13H) goes to ``AAAAAAAAAAAA``.  So the search asks
13H to ``AAAAAAAAAAAA``; one clean reply is one meter.  A garbled or overlapping reply (bytes
that are no frame, a bad checksum, several frames) means several meters answered: the search
then fixes the lowest wildcard byte to each of 00…99 (``AAAAAAAAAA00`` … ``AAAAAAAAAA99``)
and asks again with a read of 04000401 (communication address), narrowing from the least
significant byte upwards, until every pattern gets silence or one clean reply.
``step = "digit"`` narrows one digit at a time (``AAAAAAAAAAA0`` … ``AAAAAAAAAAA9``), ten
requests a level instead of a hundred: many meters accept a half-byte wildcard, the standard
does not require it.  1997 meters, which have no 13H, are asked with a read of C032 (meter
number) at every step.  Silence costs one response window per pattern.

Modbus: each unit of a range is asked for the first register of the model's map; any answer,
an exception included, is a meter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.field.port import Port
from gateway.field.reads import modbus_exchange
from protocols.dlt645 import (
    WILDCARD,
    AbnormalReply,
    AddressReply,
    Master,
    ReadAddress,
    ReadData,
    ReadReply,
    Version,
    address_matches,
    decode_reply,
)
from protocols.dlt645.errors import Dlt645Error
from protocols.dlt645.frame import OVERHEAD
from protocols.dlt645.stream import StreamDecoder
from protocols.modbus.registers import load_map

METER_NUMBER_1997 = 0xC032
COMM_ADDRESS_2007 = 0x04000401
STEPS = ("byte", "digit")


@dataclass(frozen=True, slots=True)
class FoundMeter:
    """A meter that answered: protocol, address (12 digits or Modbus unit), line settings."""

    protocol: str
    address: str
    line: str
    model: str = ""


@dataclass
class SearchStats:
    """What a search cost: requests, garbled answers, silences and bytes on the wire."""

    probes: int = 0
    collisions: int = 0
    silent: int = 0
    unresolved: list[str] = field(default_factory=list)  # full addresses still garbled
    tx_bytes: int = 0
    rx_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Heard:
    """What one wildcard request brought back."""

    addresses: tuple[str, ...]
    collision: bool


Progress = Callable[[str], None]


def narrow(pattern: str, step: str = "byte") -> list[str]:
    """The patterns fixing the lowest wildcard byte (or digit) of ``pattern`` (none if fixed)."""
    if "A" not in pattern:
        return []
    i = pattern.rindex("A")
    if step == "digit":
        return [pattern[:i] + d + pattern[i + 1 :] for d in "0123456789"]
    i -= i % 2  # the byte holding it (two digits, most significant byte first)
    return [f"{pattern[:i]}{n:02d}{pattern[i + 2 :]}" for n in range(100)]


def search_request(pattern: str, version: Version) -> bytes:
    """The wire bytes that ask every meter matching ``pattern`` for its address."""
    master = Master(version)
    if version is Version.V1997:
        return master.send(ReadData(pattern, METER_NUMBER_1997, version))
    if pattern == WILDCARD:
        return master.send(ReadAddress(pattern, version))
    return master.send(ReadData(pattern, COMM_ADDRESS_2007, version))


def settled(rx: bytes) -> bool:
    """Whether ``rx`` holds no unfinished frame (a reply may still be arriving otherwise)."""
    stream = StreamDecoder()
    stream.feed(rx)
    for _ in stream:
        pass
    return not stream.buffered and not rx.endswith(b"\xfe")  # FE: wake-up bytes, a frame next


def hear(pattern: str, rx: bytes, version: Version) -> Heard:
    """Addresses in the reply bytes to ``pattern`` and whether several meters garbled them."""
    stream = StreamDecoder()
    stream.feed(rx)
    stream.feed_eof()
    found: list[str] = []
    strange = False
    for frame in stream:
        if not frame.from_meter:
            continue  # our own request read back (local echo)
        if not address_matches(pattern, frame.address) or not frame.address.isdigit():
            strange = True
            continue
        try:
            reply = decode_reply(frame, version)
        except Dlt645Error:
            strange = True
            continue
        if isinstance(reply, AddressReply | ReadReply | AbnormalReply):
            found.append(frame.address)  # a refusal carries the meter's real address too
        else:
            strange = True
    # overlapping replies leave at least a frame's worth of bytes; a few stray bytes are line
    # noise (narrowing on them would ask every pattern down to full addresses)
    garbled = bool(stream.dropped_bytes >= OVERHEAD or stream.bad_checksums or stream.truncated)
    unique = tuple(dict.fromkeys(found))
    return Heard(unique, garbled or strange or len(found) > 1)


def search_dlt645(
    port: Port,
    version: Version,
    timeout: float,
    stats: SearchStats,
    progress: Progress | None = None,
    step: str = "byte",
) -> list[str]:
    """Every address that answers on ``port`` at its current line settings."""
    found: dict[str, None] = {}
    pending = [WILDCARD]
    while pending:
        pattern = pending.pop()
        exchange = port.transact(search_request(pattern, version), timeout, settled=settled)
        stats.probes += 1
        stats.tx_bytes += len(exchange.tx)
        stats.rx_bytes += len(exchange.rx)
        heard = hear(pattern, exchange.rx, version)
        found.update(dict.fromkeys(heard.addresses))
        if not exchange.rx:
            stats.silent += 1
        if heard.collision:
            stats.collisions += 1
            more = narrow(pattern, step)
            if not more:
                stats.unresolved.append(pattern)
            pending.extend(reversed(more))
        if progress is not None:
            progress(pattern)
    return sorted(found)


def scan_modbus(
    port: Port,
    units: Iterable[int],
    model: str,
    timeout: float,
    stats: SearchStats,
    progress: Progress | None = None,
) -> list[int]:
    """Every unit of ``units`` that answers a read of the model's first register."""
    from protocols.modbus.messages import ReadRegisters

    first = load_map(model).registers[0]
    found = []
    for unit in units:
        request = ReadRegisters(unit, first.function, first.address, first.words)
        exchange, response = modbus_exchange(port, request, timeout)
        stats.probes += 1
        stats.tx_bytes += len(exchange.tx)
        stats.rx_bytes += len(exchange.rx)
        if response is not None:
            found.append(unit)
        elif exchange.rx:
            stats.collisions += 1  # bytes, but no valid response: noise or a wrong setting
        else:
            stats.silent += 1
        if progress is not None:
            progress(str(unit))
    return found


def parse_units(text: str) -> list[int]:
    """``"1-247"``, ``"1,5,7-9"`` → unit ids (``ValueError`` outside 1…247)."""
    units: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        a, b = int(lo), int(hi or lo)
        if not 1 <= a <= b <= 247:
            raise ValueError(f"{part!r} is not a unit range within 1…247")
        units += range(a, b + 1)
    return list(dict.fromkeys(units))
