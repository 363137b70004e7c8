"""The exception tree of ``protocols.dlt698``.

::

    ProtocolError
    ├── RemoteProtocolError
    │   └── Dlt698Error              garbage from the wire: bad frame, CRC, length, tag, truncation
    │       └── Dlt698ValueError     a well-formed frame whose APDU cannot be decoded
    │       └── Dlt698SecurityError  a secured response whose MAC the security service rejects
    └── LocalProtocolError
        └── Dlt698EncodeError        a request or value that cannot be encoded

A meter's refusal (a non-zero DAR, an ERROR-Response) is an event, never an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from protocols.dlt698.frame import Frame


class Dlt698Error(RemoteProtocolError):
    """The wire carried something that is not valid DL/T 698.45."""


class Dlt698ValueError(Dlt698Error):
    """The frame was valid but its APDU is not; the frame is kept on ``frame``."""

    def __init__(self, message: str, frame: Frame | None = None) -> None:
        super().__init__(message)
        self.frame = frame


class Dlt698SecurityError(Dlt698Error):
    """A secured response failed verification (bad or missing MAC)."""


class Dlt698EncodeError(LocalProtocolError):
    """The caller asked for a frame or value DL/T 698.45 cannot express."""


def check_range(value: int, low: int, high: int, what: str) -> None:
    """``Dlt698EncodeError`` unless ``low <= value <= high`` (a field the caller filled)."""
    if not low <= value <= high:
        raise Dlt698EncodeError(f"{what} {value} is outside {low}..{high}")
