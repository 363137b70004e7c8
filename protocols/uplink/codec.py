"""Bytes ⇄ contract messages, and records ⇄ the reading model.

Wire form: UTF-8 JSON with short keys.  ``up/data`` batches, ``up/status`` and ``down/archive``
are zlib-compressed (first byte 0x78); other messages are plain JSON, but any payload may be
compressed.  Compression uses a preset dictionary of the contract's common strings (``ZDICT``,
announced by zlib's FDICT flag and identified by its Adler-32 ``DICTID``), which saves a tenth of
the bytes of a small gateway's sweep; a receiver also inflates payloads compressed without one.
Dictionaries are part of the contract: one is never changed, only a new one added beside it.
Payloads are capped at ``MAX_PAYLOAD`` bytes as received and as decompressed (no zip bombs).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from protocols.errors import ContractError
from protocols.model import Event, Reading
from protocols.quantities import Kind, get
from protocols.uplink.messages import (
    Ack,
    ArchivePush,
    Batch,
    Command,
    CommandResult,
    EventRecord,
    ReadingRecord,
    ResendRequest,
    Status,
)
from protocols.uplink.sweeps import compact, expand
from protocols.uplink.topics import parse_topic

MAX_PAYLOAD = 16 * 1024 * 1024
_ENERGY = ",".join(
    f'"energy.active.{d}.{t}":""'
    for d in ("export", "import")
    for t in ("t1", "t2", "t3", "t4", "total")
)
# The most frequent text comes last (zlib reaches back into the dictionary's end most cheaply).
ZDICT = (
    '{"v":1,"gw":"","epoch":"","seq":,"sent":"","resend":true,"records":['
    '{"r":"gap","first":,"last":,"reason":"disk budget exceeded","readings":,"events":},'
    '{"r":"ev","m":"","t":"meter_cover_open","t":"terminal_cover_open","t":"power_down",'
    '"t":"relay_change","t":"clock_drift","t":"reading_anomaly","s":"","e":"","d":"","x":{}},'
    '{"r":"rd","m":"","k":"on_demand","k":"daily_frozen","c":"","fl":["backfilled"],'
    '"fl":["clock_unsynced"],"ft":"T00:00:00+08:00","q":{"relay.state":"closed",'
    '"status.word3":"","voltage.a":"","current.a":"","power.active.total":"",'
    '"events.meter_cover.count":,"events.terminal_cover.count":,"events.power_down.count":,'
    f"{_ENERGY}}}}},"
    '{"r":"rd","m":"","k":"interval","gt":"2026-","mt":"2026-+08:00","q":{'
    '"energy.active.import.total":"","energy.active.import.t1":"","energy.active.import.t2":"",'
    '"energy.active.import.t3":"","energy.active.import.t4":""}},'
    '{"r":"sw","k":"interval","gt":"2026-","qs":["energy.active.import.total",'
    '"energy.active.import.t1","energy.active.import.t2","energy.active.import.t3",'
    '"energy.active.import.t4"],"mz":28800,"rows":[["2026'
).encode()
DICTIONARIES = {zlib.adler32(ZDICT): ZDICT}
COMPRESSED = (Batch, ArchivePush, Status)
SCHEMAS: dict[str, type[BaseModel]] = {
    "data": Batch,
    "status": Status,
    "result": CommandResult,
    "cmd": Command,
    "ack": Ack,
    "resend": ResendRequest,
    "archive": ArchivePush,
}
M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel, *, compress: bool | None = None) -> bytes:
    """Serialise a message; batches and archive pushes are compressed by default."""
    if isinstance(message, Batch):  # runs of reading records travel as columnar sweeps
        data = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["records"] = compact(data["records"])
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    else:
        body = message.model_dump_json(by_alias=True, exclude_none=True).encode()
    if compress is None:
        compress = isinstance(message, COMPRESSED)
    if not compress:
        return body
    deflater = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=ZDICT)
    return deflater.compress(body) + deflater.flush()


def _inflater(payload: bytes) -> Any:
    """A zlib inflater primed with the dictionary the payload's header names, if any."""
    header_ok = (
        len(payload) >= 6 and payload[0] & 0x0F == 8 and (payload[0] << 8 | payload[1]) % 31 == 0
    )
    if header_ok and payload[1] & 0x20:  # FDICT: a preset dictionary, its DICTID follows
        dictid = int.from_bytes(payload[2:6], "big")
        if dictid not in DICTIONARIES:
            raise ContractError(f"payload compressed with an unknown dictionary {dictid:#010x}")
        return zlib.decompressobj(zdict=DICTIONARIES[dictid])
    return zlib.decompressobj()


def _inflate(payload: bytes) -> bytes:
    if payload[:1] == b"{":
        return payload
    try:
        inflater = _inflater(payload)
        body: bytes = inflater.decompress(payload, MAX_PAYLOAD)
        if inflater.unconsumed_tail:
            raise ContractError(f"payload inflates beyond {MAX_PAYLOAD} bytes")
        return body
    except zlib.error as exc:
        raise ContractError(f"payload is neither JSON nor zlib-compressed JSON ({exc})") from None


def decode(payload: bytes, schema: type[M]) -> M:
    """Parse and validate ``payload`` as ``schema``; raise ``ContractError`` with the reason."""
    return validate(load(payload), schema)


def load(payload: bytes) -> dict[str, Any]:
    """Inflate and parse a payload into its JSON object, checking the contract version."""
    if not payload:
        raise ContractError("empty payload")
    if len(payload) > MAX_PAYLOAD:  # compressed or not: inflation is bounded in _inflate
        raise ContractError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD} bytes")
    body = _inflate(bytes(payload))
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON ({exc})") from None
    except RecursionError:  # "[[[[…" a million deep: typed like any malformed payload
        raise ContractError("payload nests JSON too deeply") from None
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object")
    if data.get("v") != 1:
        raise ContractError(f"unsupported contract version {data.get('v')!r} (expected 1)")
    return data


_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def _adapter(schema: type[M]) -> TypeAdapter[M]:
    """One adapter per schema (building one costs more than validating a batch)."""
    adapter = _ADAPTERS.get(schema)
    if adapter is None:
        adapter = _ADAPTERS[schema] = TypeAdapter(schema)
    return adapter


def validate(data: dict[str, Any], schema: type[M]) -> M:
    """Validate a loaded payload as ``schema`` (sweeps expanded first); ``ContractError``."""
    if schema is Batch and "records" in data:
        data["records"] = expand(data["records"])
    try:
        message = _adapter(schema).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ContractError(f"{schema.__name__}: {where}: {first['msg']}") from None
    if isinstance(message, ReadingRecord | Batch):
        check_values(message)
    return message


def decode_message(topic: str, payload: bytes) -> tuple[str, str, BaseModel]:
    """Decode a message received on ``topic``: (gateway id, kind, message).

    The gateway named in the payload (where it names one) must be the topic's.
    """
    gateway, _, kind = parse_topic(topic)
    message = decode(payload, SCHEMAS[kind])
    named = getattr(message, "gateway", gateway)
    if named != gateway:
        raise ContractError(f"payload names gateway {named!r} but came on {gateway!r}'s topic")
    return gateway, kind, message


def check_values(message: BaseModel) -> None:
    """Type every reading value by its quantity (``ContractError`` on the first misfit)."""
    records = message.records if isinstance(message, Batch) else (message,)
    for record in records:
        if isinstance(record, ReadingRecord):
            for name, raw in record.values.items():
                value_from_wire(name, raw)


def value_to_wire(value: Decimal | int | str) -> str | int:
    """Decimal travels as its exact string, counters as int, states as str."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ContractError(f"non-finite value {value}")
        return str(value)
    return value


def value_from_wire(quantity: str, raw: str | int) -> Decimal | int | str:
    """Type a wire value by its quantity's kind; ``ContractError`` if it does not fit."""
    kind = get(quantity).kind
    if kind is Kind.STATE:
        return str(raw)
    if kind is Kind.COUNTER:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise ContractError(f"{quantity}: counter must be an integer, got {raw!r}")
    try:
        value = Decimal(str(raw)) if isinstance(raw, str) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ContractError(f"{quantity}: expected a decimal string, got {raw!r}")
    return value


def readings_to_records(
    readings: Iterable[Reading], command: str | None = None
) -> list[ReadingRecord]:
    """Group readings taken together (same meter, time, kind) into compact records.

    ``command``: the head-end command these readings answer (an on-demand read), on every record.
    """
    groups: dict[tuple[Any, ...], dict[str, str | int]] = {}
    for r in readings:
        key = (r.meter, r.kind, r.gateway_time, r.meter_time, r.freeze_time, tuple(sorted(r.flags)))
        groups.setdefault(key, {})[r.quantity] = value_to_wire(r.value)
    return [
        ReadingRecord(
            meter=meter,
            kind=kind,
            gateway_time=gt,
            meter_time=mt,
            freeze_time=ft,
            flags=fl,
            command=command,
            values=values,
        )
        for (meter, kind, gt, mt, ft, fl), values in groups.items()
    ]


def reading_record_to_readings(record: ReadingRecord) -> list[Reading]:
    """Expand a record back into typed readings."""
    return [
        Reading(
            meter=record.meter,
            quantity=name,
            value=value_from_wire(name, raw),
            gateway_time=record.gateway_time,
            kind=record.kind,
            meter_time=record.meter_time,
            freeze_time=record.freeze_time,
            flags=frozenset(record.flags),
        )
        for name, raw in record.values.items()
    ]


def events_to_records(events: Iterable[Event]) -> list[EventRecord]:
    """Events as wire records."""
    return [
        EventRecord(
            meter=e.meter,
            type=e.type,
            start=e.start,
            end=e.end,
            detected=e.detected,
            details=_jsonable(e.details),
        )
        for e in events
    ]


def record_to_event(record: EventRecord) -> Event:
    """A wire record as an Event."""
    return Event(
        meter=record.meter,
        type=record.type,
        start=record.start,
        end=record.end,
        detected=record.detected,
        details=dict(record.details),
    )


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    def conv(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {str(k): conv(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [conv(v) for v in value]
        return value

    return {str(k): conv(v) for k, v in details.items()}
