"""Frames → plain JSON-able dicts for people (the field engineer's ``decode`` command)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from protocols.dlt645.codec import decode_reply, decode_request
from protocols.dlt645.control import Version, decode_control, guess_version
from protocols.dlt645.data_ids import find_data_id
from protocols.dlt645.errors import Dlt645Error
from protocols.dlt645.frame import Frame
from protocols.dlt645.layouts import EventRecord, StatusWord
from protocols.dlt645.messages import (
    AbnormalReply,
    OtherReply,
    OtherRequest,
    ReadReply,
)
from protocols.model import DEFAULT_METER_ZONE, MeterTime


def plain(value: Any) -> Any:
    """A JSON-able form of a decoded value (Decimal as an exact string)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, MeterTime):
        return value.aware.isoformat()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, StatusWord):
        return {"raw": f"{value.raw:04X}", "flags": list(value.flags)}
    if isinstance(value, EventRecord):
        return {
            "start": plain(value.start),
            "end": plain(value.end),
            **{k: plain(v) for k, v in value.values.items()},
        }
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    if isinstance(value, Enum):
        return value.name.lower() if isinstance(value.value, int) else value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _identifier(di: int, version: Version, values: dict[str, Any]) -> dict[str, Any]:
    row = find_data_id(di, version)
    out: dict[str, Any] = {"di": version.di_hex(di)}
    if row is None:
        out["name"] = None
        return out
    out.update(name=row.name, certainty=row.certainty)
    units = {m.key: m.unit for m in row.members} if row.members else {row.key: row.unit}
    out["values"] = {
        k: {"value": plain(v), "unit": units.get(k, row.unit)}
        if units.get(k, row.unit)
        else {"value": plain(v)}
        for k, v in values.items()
    }
    if row.members:
        out["members"] = [m.key for m in row.members]
    return out


def describe_frame(
    frame: Frame, version: Version | None = None, zone: str = DEFAULT_METER_ZONE
) -> dict[str, Any]:
    """Everything a field engineer wants to know about one frame."""
    version = version or guess_version(frame.control, len(frame.data))
    control = decode_control(frame.control, version)
    out: dict[str, Any] = {
        "address": frame.address,
        "version": version.value,
        "control": {
            "code": f"{frame.control:02X}",
            "direction": control.direction,
            "abnormal": control.abnormal,
            "follow_up": control.follow_up,
            "function": control.function.value,
        },
        "data": frame.data.hex(" ").upper(),
    }
    try:
        message: Any = (
            decode_reply(frame, version, zone)
            if frame.from_meter
            else decode_request(frame, version, zone)
        )
    except Dlt645Error as exc:
        out["error"] = str(exc)
        return out
    out["message"] = type(message).__name__
    if isinstance(message, AbnormalReply):
        out["error"] = {"code": f"{message.error:02X}", "reasons": list(message.reasons)}
    elif isinstance(message, ReadReply):
        out["identifier"] = _identifier(message.di, version, dict(message.values))
        if message.seq is not None:
            out["seq"] = message.seq
    elif not isinstance(message, OtherReply | OtherRequest):
        fields = {
            f.name: plain(getattr(message, f.name))
            for f in dataclasses.fields(message)
            if f.name not in ("address", "version", "payload") and getattr(message, f.name) != b""
        }
        if "di" in fields:
            di = fields.pop("di")
            row = find_data_id(di, version)
            out["identifier"] = {"di": version.di_hex(di), "name": row.name if row else None}
        if fields:
            out["command"] = fields
    return out
