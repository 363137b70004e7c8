"""The audit chain's hashing: canonical JSON and the link of one row to the previous.

::

    detail  = canonical JSON of the caller's detail (sorted keys, no spaces, UTF-8)
    body    = canonical JSON of {"id", "at", "actor", "action", "subject", "detail"}
              with ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and ``detail`` as its text
    hash    = sha256(prev_hash + body), hex; the first row's prev_hash is 64 zeros

The stored ``detail`` is the canonical text itself, so verification never re-serialises values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_at(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"audit detail value {value!r} of type {type(value).__name__} is not JSON-able")


def canonical(value: Any) -> str:
    """Deterministic JSON text of ``value`` (sorted keys, compact, non-ASCII kept)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def format_at(at: datetime) -> str:
    """An aware instant as fixed-width UTC text (microsecond precision)."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(
    prev_hash: str,
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: str,
) -> str:
    """The hash of one row given the previous row's hash (``detail`` is canonical text)."""
    body: Mapping[str, Any] = {
        "id": id,
        "at": format_at(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": detail,
    }
    return hashlib.sha256((prev_hash + canonical(body)).encode()).hexdigest()
