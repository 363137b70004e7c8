"""Finding the meters on a bus (搜表).

DL/T 645: a request to the wildcard address ``AAAAAAAAAAAA`` is answered by every meter; one
clean reply is one meter.  A garbled or overlapping reply (bytes that are no frame, a bad
checksum, several frames) means several meters answered: the search then fixes the lowest
wildcard digit to each of 0…9 (``AAAAAAAAAAA0`` … ``AAAAAAAAAAA9``) and asks again, narrowing
from the least significant digit upwards (abbreviated addressing keeps the wildcards in the
high-order digits), until every pattern gets silence or one clean reply.  2007 meters are asked
with read address (13H), 1997 meters, which have no 13H, with a read of C032 (meter number)
whose reply carries the meter's address.  Silence costs one response window per pattern.

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
from protocols.dlt645.stream import StreamDecoder
from protocols.modbus.registers import load_map

METER_NUMBER_1997 = 0xC032


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


def narrow(pattern: str) -> list[str]:
    """The ten patterns fixing the lowest wildcard digit of ``pattern`` (none if fully fixed)."""
    if "A" not in pattern:
        return []
    i = pattern.rindex("A")
    return [pattern[:i] + d + pattern[i + 1 :] for d in "0123456789"]


def search_request(pattern: str, version: Version) -> bytes:
    """The wire bytes that ask every meter matching ``pattern`` for its address."""
    master = Master(version)
    if version is Version.V2007:
        return master.send(ReadAddress(pattern, version))
    return master.send(ReadData(pattern, METER_NUMBER_1997, version))


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
        if isinstance(reply, AddressReply | ReadReply):
            found.append(frame.address)
        else:
            strange = True  # an abnormal reply: a meter is there, say it again narrower
    garbled = bool(stream.dropped_bytes or stream.bad_checksums or stream.truncated)
    unique = tuple(dict.fromkeys(found))
    return Heard(unique, garbled or strange or len(found) > 1)


def search_dlt645(
    port: Port,
    version: Version,
    timeout: float,
    stats: SearchStats,
    progress: Progress | None = None,
) -> list[str]:
    """Every address that answers on ``port`` at its current line settings."""
    found: dict[str, None] = {}
    pending = [WILDCARD]
    while pending:
        pattern = pending.pop()
        exchange = port.transact(search_request(pattern, version), timeout)
        stats.probes += 1
        stats.tx_bytes += len(exchange.tx)
        stats.rx_bytes += len(exchange.rx)
        heard = hear(pattern, exchange.rx, version)
        found.update(dict.fromkeys(heard.addresses))
        if not exchange.rx:
            stats.silent += 1
        if heard.collision:
            stats.collisions += 1
            more = narrow(pattern)
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
    from protocols.modbus.pdu import ReadRegisters

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
