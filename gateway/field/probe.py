"""Learning one DL/T 645 meter: which edition and line settings it answers at, clock and relay.

Every (edition, line) pair is tried with one read (2007: 04000401 communication address, 1997:
9010 forward active energy); any reply from the meter's address, a refusal included, proves it
hears that pair.  At the first pair that works the meter's clock and (2007) status word 3 —
relay and keep-power state — are read.  Over ``socket://`` the line settings are the remote
server's, so every line that is tried is in fact the same one: use ``rfc2217://`` or a device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.bus.link import Line
from gateway.field.port import NO_ANSWER, OK, Port
from gateway.field.reads import ReadResult, read_dlt645
from protocols.dlt645 import Version

PROBE_DI = {Version.V2007: 0x04000401, Version.V1997: 0x9010}
CLOCK_DIS = {Version.V2007: (0x04000101, 0x04000102), Version.V1997: (0xC010, 0xC011)}
STATUS_WORD_3 = 0x04000503
BAUDS = (2400, 1200, 9600, 4800)


def candidate_lines(bauds: Sequence[int] = BAUDS, parities: str = "EN") -> list[Line]:
    """Line settings to try, most likely first (8E1 is the standard's; some meters use 8N1)."""
    return [Line(b, p) for p in parities for b in bauds]


@dataclass
class ProbeResult:
    """What a probe learned (``works``: every edition and line the meter answered at)."""

    address: str
    works: list[tuple[str, str]] = field(default_factory=list)
    tried: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    reads: list[ReadResult] = field(default_factory=list)

    @property
    def code(self) -> int:
        """The exit code: OK once the meter answered at all."""
        return OK if self.works else NO_ANSWER


def probe(
    port: Port,
    address: str,
    lines: Sequence[Line],
    timeout: float,
    versions: Sequence[Version] = (Version.V2007, Version.V1997),
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Try every edition × line on ``address``; read clock and relay at the first that works."""
    result = ProbeResult(address)
    first: tuple[Version, Line] | None = None
    for line in lines:
        port.configure(line)
        for version in versions:
            read = read_dlt645(port, address, PROBE_DI[version], version, timeout)
            result.tried += 1
            if progress is not None:
                progress(f"{version.value} {line}")
            if read.code != NO_ANSWER:
                result.works.append((f"dlt645-{version.value}", str(line)))
                first = first or (version, line)
    if first is None:
        return result
    version, line = first
    port.configure(line)
    result.values["protocol"] = f"dlt645-{version.value}"
    result.values["line"] = str(line)
    dis = [*CLOCK_DIS[version], *((STATUS_WORD_3,) if version is Version.V2007 else ())]
    for di in dis:
        read = read_dlt645(port, address, di, version, timeout)
        result.reads.append(read)
        result.values.update(read.values)
    if "relay.state" not in result.values:
        result.values["relay.state"] = (
            "unknown (1997 meters have no status word 3)"
            if version is Version.V1997
            else "unknown (status word 3 not read)"
        )
    return result
