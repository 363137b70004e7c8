"""Translations (``translations/<lang>.json``: key → text with ``{name}`` fields) and formatting
of times in the operator's zone.

English is complete by construction (tests check every key a template uses is in both
catalogues); a key missing from Chinese falls back to English, a key missing from both shows
itself, so a gap is visible rather than an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CATALOGUES = Path(__file__).with_name("translations")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The key → text table of ``lang``."""
    data = json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{lang}.json must hold one object of key → text")
    return {str(k): str(v) for k, v in data.items()}


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **fields)`` for ``lang``."""
    own, fallback = catalogue(lang), catalogue("en")

    def t(key: str, **fields: Any) -> str:
        text = own.get(key) or fallback.get(key) or key
        if fields:
            try:
                return text.format(**fields)
            except (KeyError, IndexError, ValueError):
                return text
        return text

    return t


def format_time(value: datetime | str | None, zone: ZoneInfo, seconds: bool = True) -> str:
    """An instant as local wall time in ``zone`` (empty for None)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:  # stored times are UTC; never guess another zone
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_day(value: date | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def percent(value: Decimal | str | float | None, digits: int = 2) -> str:
    """A fraction as a percentage (``0.0476`` → ``4.76 %``); empty when unknown."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value)) * 100
    except InvalidOperation:
        return str(value)
    return f"{number:.{digits}f} %"
