"""Frames and APDUs as plain JSON-able dicts (for ``taiqu dlt698 decode`` and logs)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from protocols.dlt698.apdu import ResultNormal, ResultRecord
from protocols.dlt698.axdr import Data
from protocols.dlt698.decoder import decode_apdu
from protocols.dlt698.descriptors import OAD, OMD, DataType, dar_name
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.frame import Frame, ServerAddress
from protocols.dlt698.values import decode_value


def plain(obj: Any) -> Any:
    """A JSON-able rendering of codec values (bytes as hex, enums by name, OADs as hex)."""
    if isinstance(obj, Data):
        if obj.type in (DataType.ARRAY, DataType.STRUCTURE):
            return {obj.type.name.lower(): [plain(d) for d in obj.value]}
        return {obj.type.name.lower(): plain(obj.value)}
    if isinstance(obj, OAD | OMD):
        return str(obj)
    if isinstance(obj, ServerAddress):
        return {"address": obj.address, "type": obj.kind.name.lower(), "logical": obj.logical}
    if isinstance(obj, bytes | bytearray):
        return obj.hex().upper()
    if isinstance(obj, Enum):
        return obj.name.lower()
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if hasattr(obj, "to_datetime"):
            stamp = obj.to_datetime()
            out["iso"] = stamp.isoformat() if stamp else None
        return out
    if isinstance(obj, tuple | list):
        return [plain(o) for o in obj]
    return obj


def _values(apdu: Any) -> dict[str, str]:
    """Canonical values found in the results of ``apdu`` (decimal strings)."""
    results: list[Any] = []
    for name in ("result", "results"):
        found = getattr(apdu, name, None)
        results += [found] if isinstance(found, ResultNormal | ResultRecord) else list(found or ())
    out: dict[str, str] = {}
    for result in results:
        if isinstance(result, ResultNormal) and result.data is not None:
            try:
                out.update({k: str(v) for k, v in decode_value(result.oad, result.data).items()})
            except Dlt698Error:
                continue
    return out


def describe_frame(frame: Frame) -> dict[str, Any]:
    """Everything a field engineer wants to see of one frame."""
    out: dict[str, Any] = {
        "control": f"{frame.control:02X}",
        "direction": "server→client" if frame.from_server else "client→server",
        "started_by": "server" if frame.server_started else "client",
        "function": {1: "link", 3: "data"}.get(frame.function, str(frame.function)),
        "server": plain(frame.server),
        "client": frame.client,
    }
    if frame.fragment is not None:
        out["fragment"] = plain(frame.fragment)
        out["apdu_fragment"] = frame.apdu.hex().upper()
        return out
    try:
        apdu = decode_apdu(frame.apdu)
    except Dlt698Error as exc:
        out["apdu_hex"] = frame.apdu.hex().upper()
        out["error"] = str(exc)
        return out
    out["service"] = type(apdu).__name__
    out["apdu"] = plain(apdu)
    values = _values(apdu)
    if values:
        out["values"] = values
    dars = [
        r.dar
        for r in (getattr(apdu, "result", None), *(getattr(apdu, "results", ()) or ()))
        if isinstance(r, ResultNormal | ResultRecord) and r.dar
    ]
    if dars:
        out["dar"] = [dar_name(d) for d in dars]
    return out
