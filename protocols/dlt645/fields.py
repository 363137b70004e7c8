"""Data-field pieces every DL/T 645 encoder shares: codes, identifiers, passwords, time stamps.

Used by the request and reply codec (``codec``) and the secured frames (``security``).  Multi-byte
fields go least significant byte first; a password ``LLPPPPPP`` is the level byte PA, then the
6-digit password least significant byte first; an operator code is 8 hex digits, reversed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from protocols.dlt645.control import CODES, Function, Version
from protocols.dlt645.errors import Dlt645EncodeError
from protocols.dlt645.layouts import Stamp

STAMP: Final = Stamp("YYMMDDhhmmss")


def function_code(function: Function, version: Version) -> int:
    """The control code of ``function`` in ``version`` (``Dlt645EncodeError`` if it has none)."""
    try:
        return CODES[version][function]
    except KeyError:
        raise Dlt645EncodeError(f"DL/T 645-{version.value} has no {function.value}") from None


def di_bytes(di: int, version: Version) -> bytes:
    """The data identifier as the wire carries it (4 bytes in 2007, 2 in 1997)."""
    try:
        return di.to_bytes(version.di_length, "little")
    except (OverflowError, AttributeError):
        raise Dlt645EncodeError(f"data identifier {di!r} does not fit {version.value}") from None


def hex4(text: str, what: str) -> bytes:
    """Four bytes from 8 hex digits (``Dlt645EncodeError`` naming ``what`` otherwise)."""
    try:
        raw = bytes.fromhex(text)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 4:
        raise Dlt645EncodeError(f"{what} {text!r} is not 8 hex digits")
    return raw


def password_bytes(password: str) -> bytes:
    """``LLPPPPPP`` → PA P0 P1 P2."""
    raw = hex4(password, "password")
    return raw[:1] + raw[:0:-1]


def password_text(raw: bytes) -> str:
    """PA P0 P1 P2 → ``LLPPPPPP``."""
    return (raw[:1] + raw[:0:-1]).hex().upper()


def operator_bytes(operator: str) -> bytes:
    """8 hex digits → C0..C3 (least significant first)."""
    return hex4(operator, "operator code")[::-1]


def stamp_bytes(when: datetime | None, what: str) -> bytes:
    """``ss mm hh DD MM YY`` of a naive meter-local time (``what`` names it in errors)."""
    if when is None:
        raise Dlt645EncodeError(f"{what} needs a time")
    if when.tzinfo is not None:
        raise Dlt645EncodeError(f"{what} takes naive meter-local time, got {when.isoformat()}")
    return STAMP.encode(when)


__all__ = [
    "STAMP",
    "di_bytes",
    "function_code",
    "hex4",
    "operator_bytes",
    "password_bytes",
    "password_text",
    "stamp_bytes",
]
