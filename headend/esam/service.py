"""What the command flow needs from an encryption service (the utility's encryption machine).

The calls mirror what a State Grid encryption machine's API offers (identity authentication by
factor; remote control from random number 2, factor, ESAM serial and plaintext; first-class
parameter MAC; second-class parameter encryption; MAC check of data read back), so an adapter for a
network HSM is a thin translation.  Every byte string is in the service's order (most significant
first); ``protocols.dlt645`` reverses them on the wire.

Errors are typed: ``EncryptionUnavailable`` (the service cannot be reached: retry later, nothing was
sent to a meter), ``EncryptionRefused`` (it answered no: wrong key state, unknown meter …).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from headend.db.errors import HeadendError


class EncryptionError(HeadendError):
    """The encryption service could not do what was asked."""


class EncryptionUnavailable(EncryptionError):
    """The service did not answer (network, HSM down, timeout)."""


class EncryptionRefused(EncryptionError):
    """The service answered with a refusal."""


@dataclass(frozen=True)
class Challenge:
    """Step 1 of a session, for one meter: what the 03H authentication carries."""

    address: str
    factor: bytes  # 8 bytes: 0000 + meter number
    random1: bytes  # 8 bytes
    ciphertext1: bytes  # 8 bytes


@dataclass(frozen=True)
class SessionInfo:
    """An authenticated session: the challenge plus what the meter answered."""

    challenge: Challenge
    random2: bytes  # 4 bytes
    esam_serial: bytes  # 8 bytes

    @property
    def address(self) -> str:
        return self.challenge.address


class EncryptionService(Protocol):
    """The interface; ``production_ready`` is False for laboratory implementations."""

    name: str
    production_ready: bool

    def authenticate(self, address: str) -> Challenge:
        """A fresh random number 1 and its ciphertext 1 for the meter at ``address``."""
        ...

    def seal_control(
        self, session: SessionInfo, seq: int, action: int, valid_until: datetime
    ) -> bytes:
        """The 20-byte sealed 1CH block (N1 = ``action``, N2 = 0, naive meter-local time)."""
        ...

    def seal_write(
        self, session: SessionInfo, seq: int, di: int, value: bytes, level: int
    ) -> bytes:
        """Payload of a 14H write: ``value + MAC`` (level 99) or ``ciphertext + MAC`` (98)."""
        ...

    def verify_reply_mac(
        self, session: SessionInfo, seq: int, header: bytes, data: bytes, mac: bytes
    ) -> bool:
        """Whether ``mac`` authenticates ``data`` a meter sent back in this session.

        Used for the ESAM data read-back (03H 078001FF) that ends every control or write step:
        ``header`` = address ‖ 83H ‖ DI, ``data`` = identifier ‖ data read back, ``seq`` = the
        sealed frames of the step (laboratory scheme; a real machine may ignore it).  False for
        a wrong MAC; ``EncryptionError`` only when the service cannot answer.
        """
        ...


def control_plaintext(action: int, valid_until: datetime) -> bytes:
    """N1 N2 YYMMDDhhmmss: the plaintext an encryption machine seals for 1CH (8 bytes)."""
    if valid_until.tzinfo is not None:
        raise EncryptionRefused("valid-until must be naive meter-local time")
    return bytes((action, 0)) + bytes.fromhex(valid_until.strftime("%y%m%d%H%M%S"))
