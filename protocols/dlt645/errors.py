"""The exception tree of ``protocols.dlt645``.

::

    ProtocolError
    ├── RemoteProtocolError
    │   └── Dlt645Error              garbage from the wire: bad frame, checksum, BCD, length
    │       └── Dlt645ValueError     a well-formed frame whose value cannot be decoded
    └── LocalProtocolError
        └── Dlt645EncodeError        a request or value that cannot be encoded

An abnormal reply from a meter is an event (``AbnormalReply``), never an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from protocols.dlt645.frame import Frame


class Dlt645Error(RemoteProtocolError):
    """The wire carried something that is not valid DL/T 645."""


class Dlt645ValueError(Dlt645Error):
    """A frame was valid but its value is not; the frame is kept on ``frame``."""

    def __init__(self, message: str, frame: Frame | None = None) -> None:
        super().__init__(message)
        self.frame = frame


class Dlt645EncodeError(LocalProtocolError):
    """The caller asked for a frame or value DL/T 645 cannot express."""
