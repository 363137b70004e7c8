"""Sans-IO connections: one codec for both roles (h11 / wsproto pattern).

``Client`` (``client``) is the gateway's side of one bus: typed requests out (``get``,
``get_list``, ``get_record``, ``get_next``, ``set``, ``action``, ``connect``, ``release`` or any
``send``), bytes in, typed responses out.  ``Server`` (``server``) is the meters' side: bytes
in, ``Incoming`` requests out with their target address; the meter model answers with
``respond``.  Neither does I/O: methods return bytes to write, ``receive_data`` takes bytes
read, ``next_event`` returns an event or ``NEED_DATA``, ``data_to_send`` returns bytes the codec
must write on its own (fragment confirmations).  What both share is ``base``'s.
"""

from __future__ import annotations

from protocols.dlt698.connection.base import (
    DAR_SECURITY_FAILED,
    DEFAULT_FRAGMENT,
    MAX_REASSEMBLED,
    NEED_DATA,
    NeedData,
)
from protocols.dlt698.connection.client import Client
from protocols.dlt698.connection.server import Incoming, Server

__all__ = [
    "DAR_SECURITY_FAILED",
    "DEFAULT_FRAGMENT",
    "MAX_REASSEMBLED",
    "NEED_DATA",
    "Client",
    "Incoming",
    "NeedData",
    "Server",
]
