"""What a bus worker runs: exchanges (one request, its reply), their priorities, their errors.

Exceptions::

    LinkError (gateway.errors) the port failed or cannot be opened
    TransactionError           a meter did not answer (``TransactionTimeout``) or answered garbage
    └── TransactionTimeout
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol


class Priority(IntEnum):
    """Lower runs first."""

    COMMAND = 0  # relay, time sync: the head-end is waiting
    ON_DEMAND = 1  # a read the head-end asked for
    ENERGY = 2  # the energy sweep: tight, so the area's readings are aligned
    SCHEDULED = 3  # event / instantaneous sweeps, daily frozen reads
    BACKFILL = 4  # daily frozen back-fill: whenever the bus is idle


class TransactionError(Exception):
    """A meter did not give a usable reply (after retries)."""


class TransactionTimeout(TransactionError):
    """No complete reply within the response window (after retries)."""


class Exchange(Protocol):
    """One request and the parsing of its reply (sans-IO; a fresh one per attempt)."""

    request: bytes
    reply_len: int  # longest expected reply, for the timeout
    expects_reply: bool

    def feed(self, data: bytes) -> Any | None:
        """Take received bytes; return the outcome once complete, else ``None``."""
        ...


class Conversation(Exchange, Protocol):
    """An exchange that writes more than once before its outcome (DL/T 698.45 fragment
    confirmations, a CONNECT before the request): after each ``feed`` that returns ``None``
    the worker writes ``data_to_send()`` if it is not empty, and the reply window starts
    again from that write."""

    def data_to_send(self) -> bytes: ...


ExchangeFactory = Callable[[], Exchange]
MAX_WRITES = 64  # writes of one conversation at most (a device that never ends its fragments)
