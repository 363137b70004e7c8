"""Where commands get signed: a ``Signer`` protocol and the no-op default.

The signature covers ``Command.signing_bytes()``; the key handling belongs to the security work.
"""

from __future__ import annotations

from typing import Protocol

from protocols.uplink import Command, Signature


class Signer(Protocol):
    """Signs a contract command (or declines, returning None)."""

    def sign(self, command: Command) -> Signature | None: ...


class NoSigner:
    """Sends commands unsigned (until command signing is configured)."""

    def sign(self, command: Command) -> Signature | None:
        return None
