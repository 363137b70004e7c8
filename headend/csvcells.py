"""CSV cells a spreadsheet will not execute (CSV/formula injection, OWASP).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken as
a formula by Excel, LibreOffice and WPS (``=HYPERLINK(…)``, ``=cmd|…``, DDE); an export prefixes
such a cell with ``'`` so it shows as text.  Numbers stay numbers: an ``int``/``Decimal``/``float``
and a text cell that is exactly a signed decimal number (``-12.5``, ``+3``) pass unchanged (a
reading or a balance may be negative).  The meter CSV import takes the prefix back off
(``unescape``), so an export re-imports unchanged.
"""

from __future__ import annotations

import re
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def escape(value: Any) -> Any:
    """``value`` safe to open in a spreadsheet (non-text values unchanged)."""
    if not isinstance(value, str) or not value.startswith(TRIGGERS) or NUMBER.match(value):
        return value
    return "'" + value


def unescape(value: str) -> str:
    """Undo ``escape`` on an imported cell."""
    if value.startswith("'") and value[1:].startswith(TRIGGERS) and not NUMBER.match(value[1:]):
        return value[1:]
    return value


def row(values: Any) -> list[Any]:
    """``escape`` every cell of a row."""
    return [escape(v) for v in values]
