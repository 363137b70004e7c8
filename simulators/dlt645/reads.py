"""How a DL/T 645 meter answers a read, by its personality (``simulators.personalities``).

``classify`` is the firmware's first decision, from the identifier alone::

    readable   answered in full
    partial    a phase block answered with fewer phases (a single-phase meter: A only)
    filled     a block answered with the members it lacks filled with FF or EE bytes
    refused    an abnormal reply (no requested data): unknown, lacking, or a block identifier
               on a meter without block support
    silent     no reply at all (a meter that ignores what it does not support)

``answer_read`` then builds the value bytes and splits a reply longer than the personality's
``max_frame_data`` into follow-up frames: the first reply carries the follow-up bit (B1H), the
master asks 12H with SEQ 1, 2, … (1997: 02H without SEQ) and gets 92H/B2H until the last frame.
Every read is counted per identifier and outcome on ``Meter.reads`` (ground truth of what the
meter really did).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from protocols.dlt645 import (
    AbnormalReply,
    DataId,
    Function,
    ReadData,
    ReadFollowUp,
    ReadReply,
    Reply,
    Version,
    error_byte,
    find_data_id,
)
from protocols.dlt645.errors import Dlt645ValueError
from protocols.dlt645.layouts import Bcd, Group
from protocols.dlt645.load_profile import ProfileRecord, ProfileRecords, parse_params
from simulators.history import NoData, profile_value
from simulators.meter import Meter
from simulators.personalities import Personality

if TYPE_CHECKING:
    from simulators.dlt645.meter import Dlt645Listener

OUTCOMES = ("readable", "partial", "filled", "refused", "silent")
_NO_DATA = {Version.V2007: "no_requested_data", Version.V1997: "data_identifier_error"}
_FILLER = {"FF": 0xFF, "EE": 0xEE}


def fit(layout: Any, value: Any, key: str) -> Any:
    """Quantise a float for a BCD layout (energy truncates and rolls over, like a register)."""
    if not isinstance(layout, Bcd) or not isinstance(value, int | float | Decimal):
        return value
    if layout.integer:
        return int(value)
    quantum = Decimal(1).scaleb(-layout.decimals)
    energy = key.startswith("energy.")
    number = Decimal(repr(float(value))).quantize(
        quantum, rounding=ROUND_DOWN if energy else ROUND_HALF_EVEN
    )
    limit = Decimal(10) ** (layout.digits - layout.decimals)
    if energy and not layout.signed:
        return number % limit
    bound = (Decimal(8) * Decimal(10) ** (layout.digits - 1) - 1).scaleb(-layout.decimals)
    return max(-bound, min(bound, number)) if layout.signed else max(Decimal(0), min(bound, number))


def is_block_di(di: int, version: Version) -> bool:
    """Whether ``di`` is a block identifier (…FF.. / …F): what 'no block support' refuses."""
    if version is Version.V1997:
        return di & 0xF == 0xF
    return (di >> 8) & 0xFF == 0xFF or di & 0xFF == 0xFF


def dropped_member(p: Personality, name: str) -> bool:
    """Whether a block member is a phase the meter's blocks do not carry."""
    phase = name.rsplit(".", 1)[-1]
    return phase in ("a", "b", "c") and "abc".index(phase) >= p.block_phases


def _unsupported(p: Personality) -> str:
    return "silent" if p.on_unsupported == "silent" else "refused"


@lru_cache(maxsize=8192)
def classify(p: Personality, version: Version, di: int) -> str:
    """What a meter of personality ``p`` does with a read of ``di`` (one of ``OUTCOMES``)."""
    row = find_data_id(di, version)
    if row is None or p.lacks_di(version.di_hex(di)):
        return _unsupported(p)
    if is_block_di(di, version) and not p.blocks:
        return "refused"
    if (
        (row.period == "settlement" and row.index and not p.settlement)
        or (row.period == "load_profile" and not p.load_profile)
        or (row.key.startswith("events.") and not p.event_counters)
    ):
        return _unsupported(p)
    if isinstance(row.layout, Group):
        kept = [name for name, _ in row.layout.fields if not dropped_member(p, name)]
        if any(p.lacks_key(name) for name in kept):
            return "filled" if p.block_filler else _unsupported(p)
        return "partial" if len(kept) < len(row.layout.fields) else "readable"
    return _unsupported(p) if p.lacks_key(row.key) else "readable"


@lru_cache(maxsize=8192)
def _hex(version: Version, di: int) -> str:
    return version.di_hex(di)


def _count(meter: Meter, version: Version, di: int, outcome: str) -> None:
    counts = meter.reads.get(_hex(version, di))
    if counts is None:
        counts = meter.reads[_hex(version, di)] = {}
    counts[outcome] = counts.get(outcome, 0) + 1


def _value_bytes(
    listener: Dlt645Listener, meter: Meter, row: DataId, request: ReadData, ts: float
) -> bytes:
    """The value bytes the meter sends for ``row`` (``NoData`` if it holds none)."""
    p = meter.spec.personality
    layout = row.layout
    if isinstance(layout, ProfileRecords):
        try:
            count, start = parse_params(row.di, request.params, meter.spec.zone)
        except Dlt645ValueError as exc:
            raise NoData(str(exc)) from None
        records = profile_value(meter, (row.di >> 16) & 0xFF, row.di & 0xFF, count, start, ts)
        fitted = tuple(
            ProfileRecord(
                r.time, {name: fit(sub, r.values[name], name) for name, sub in layout.fields}
            )
            for r in records
        )
        return layout.encode(fitted)
    values = listener.read(meter, row.di, ts)
    if not isinstance(layout, Group):
        return layout.encode(values[row.key])
    filler = _FILLER.get(p.block_filler, 0xFF)
    parts = []
    for name, sub in layout.fields:
        if dropped_member(p, name):
            continue
        if p.lacks_key(name):
            parts.append(bytes((filler,)) * sub.length)
        else:
            parts.append(sub.encode(values[name]))
    return b"".join(parts)


def _abnormal(meter: Meter, version: Version, function: Function) -> AbnormalReply:
    reason = _NO_DATA[version]
    return AbnormalReply(
        meter.address, function, error_byte((reason,), version), (reason,), version
    )


def frame_limit(p: Personality, version: Version) -> int:
    """Value bytes one reply frame carries (L ≤ 200 with the identifier and SEQ)."""
    return min(p.max_frame_data, 200 - version.di_length - 1)


def probe(listener: Dlt645Listener, meter: Meter, di: int, ts: float, params: bytes = b"") -> str:
    """What a read of ``di`` would get at ``ts`` (an outcome, or ``no_data``), counting nothing."""
    version = listener.version
    outcome = classify(meter.spec.personality, version, di)
    row = find_data_id(di, version)
    if outcome in ("silent", "refused") or row is None:
        return outcome
    request = ReadData(meter.address, di, version, params)
    try:
        _value_bytes(listener, meter, row, request, ts)
    except NoData:
        return "no_data"
    return outcome


def answer_read(
    listener: Dlt645Listener, meter: Meter, request: ReadData, ts: float
) -> Reply | None:
    """The reply to a read (``None``: silence)."""
    version = listener.version
    outcome = classify(meter.spec.personality, version, request.di)
    row = find_data_id(request.di, version)
    if outcome in ("silent", "refused") or row is None:
        _count(meter, version, request.di, outcome)
        return None if outcome == "silent" else _abnormal(meter, version, Function.READ)
    try:
        raw = _value_bytes(listener, meter, row, request, ts)
    except NoData:
        _count(meter, version, request.di, "no_data")
        return _abnormal(meter, version, Function.READ)
    _count(meter, version, request.di, outcome)
    limit = frame_limit(meter.spec.personality, version)
    if len(raw) <= limit:
        return ReadReply(meter.address, request.di, raw=raw, version=version)
    chunks = [raw[i : i + limit] for i in range(0, len(raw), limit)]
    listener.follow_ups[meter.address] = (request.di, chunks, 1)
    return ReadReply(meter.address, request.di, raw=chunks[0], follow_up=True, version=version)


def answer_follow_up(listener: Dlt645Listener, meter: Meter, request: ReadFollowUp) -> Reply:
    """The next frame of a long reply (abnormal if nothing is pending for that identifier)."""
    version = listener.version
    pending = listener.follow_ups.get(meter.address)
    if pending is None or pending[0] != request.di:
        return _abnormal(meter, version, Function.READ_FOLLOW_UP)
    di, chunks, after = pending
    index = request.seq if version is Version.V2007 else after  # 1997 has no SEQ: in order
    if not 1 <= index < len(chunks):
        return _abnormal(meter, version, Function.READ_FOLLOW_UP)
    listener.follow_ups[meter.address] = (di, chunks, index + 1)
    more = index < len(chunks) - 1
    return ReadReply(
        meter.address, di, raw=chunks[index], follow_up=more, seq=request.seq, version=version
    )


__all__ = [
    "OUTCOMES",
    "answer_follow_up",
    "answer_read",
    "classify",
    "fit",
    "frame_limit",
    "is_block_di",
    "probe",
]
