"""Bytes ⇄ contract messages, and records ⇄ the reading model.

Wire form: UTF-8 JSON with short keys.  ``up/data`` batches and ``down/archive`` pushes are
zlib-compressed (first byte 0x78); other messages are plain JSON, but any payload may be
compressed.  Decompressed payloads are capped at ``MAX_PAYLOAD`` bytes (no zip bombs).
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
from protocols.uplink.topics import parse_topic

MAX_PAYLOAD = 16 * 1024 * 1024
COMPRESSED = (Batch, ArchivePush)
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
    body = message.model_dump_json(by_alias=True, exclude_none=True).encode()
    if compress is None:
        compress = isinstance(message, COMPRESSED)
    return zlib.compress(body, 6) if compress else body


def _inflate(payload: bytes) -> bytes:
    if payload[:1] == b"{":
        return payload
    try:
        inflater = zlib.decompressobj()
        body = inflater.decompress(payload, MAX_PAYLOAD)
        if inflater.unconsumed_tail:
            raise ContractError(f"payload inflates beyond {MAX_PAYLOAD} bytes")
        return body
    except zlib.error as exc:
        raise ContractError(f"payload is neither JSON nor zlib-compressed JSON ({exc})") from None


def decode(payload: bytes, schema: type[M]) -> M:
    """Parse and validate ``payload`` as ``schema``; raise ``ContractError`` with the reason."""
    if not payload:
        raise ContractError("empty payload")
    body = _inflate(bytes(payload))
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object")
    if data.get("v") != 1:
        raise ContractError(f"unsupported contract version {data.get('v')!r} (expected 1)")
    try:
        message = TypeAdapter(schema).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ContractError(f"{schema.__name__}: {where}: {first['msg']}") from None
    if isinstance(message, ReadingRecord | Batch):
        _check_values(message)
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


def _check_values(message: BaseModel) -> None:
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


def readings_to_records(readings: Iterable[Reading]) -> list[ReadingRecord]:
    """Group readings taken together (same meter, time, kind) into compact records."""
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
