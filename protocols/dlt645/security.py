"""The seam where an encryption service (ESAM) can wrap remote-control frames.

Cost-control meters with an ESAM accept plaintext 1CH only in factory mode; in the field the
1CH data is ciphertext + MAC produced by the utility's encryption service after a 03H
authentication.  Taiqu implements the plaintext form only and invents no cryptography: a
deployment plugs its service in as a ``ControlSealer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from protocols.dlt645.messages import RemoteControl


class ControlSealer(Protocol):
    """Turns the plaintext data of a 1CH frame into the data actually sent."""

    def seal(self, request: RemoteControl, plaintext: bytes) -> bytes:
        """The data field (before the +33H offset) to send for ``request``."""
        ...


class Plaintext:
    """No encryption: the data field is the plaintext (factory mode, simulators, tests)."""

    def seal(self, request: RemoteControl, plaintext: bytes) -> bytes:
        """Return ``plaintext`` unchanged."""
        return plaintext


PLAINTEXT = Plaintext()
