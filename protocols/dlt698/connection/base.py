"""What the DL/T 698.45 client and server share: the bus side, fragments and limits."""

from __future__ import annotations

from protocols.connection import NEED_DATA, BusConnection, NeedData
from protocols.dlt698.stream import StreamDecoder

DEFAULT_FRAGMENT = 512  # APDU bytes per frame a server sends before fragmenting
MAX_REASSEMBLED = 65536  # bytes of one fragmented answer a client accepts (meters send < 8 kB)
DAR_SECURITY_FAILED = 23  # "安全认证失败": the answer to a secured request that did not verify


class Connection(BusConnection[StreamDecoder]):
    """One role's end of a DL/T 698.45 bus, with its queue of frames to write unasked."""

    def __init__(self, preamble: int) -> None:
        super().__init__(StreamDecoder(), preamble)
        self._out = bytearray()

    def data_to_send(self) -> bytes:
        """Bytes the codec needs written (fragment confirmations); empties the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out


__all__ = [
    "DAR_SECURITY_FAILED",
    "DEFAULT_FRAGMENT",
    "MAX_REASSEMBLED",
    "NEED_DATA",
    "Connection",
    "NeedData",
]
