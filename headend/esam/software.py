"""The laboratory encryption service: Taiqu's SM4 scheme (``protocols.esam.lab``), NOT production.

Per-meter keys are diversified from one master key by the meter's address; the master key is 16
random bytes, hex, in a file only its owner may read (0600).  Every instance logs a warning that
it is for laboratories, tests and demos; ``settings.make_service`` refuses it in production mode.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from headend.esam.service import (
    Challenge,
    EncryptionRefused,
    EncryptionUnavailable,
    SessionInfo,
    control_plaintext,
)
from protocols.dlt645 import LEVEL_MAC, LEVEL_SEALED, Dlt645EncodeError, factor_of
from protocols.esam import (
    LabCryptoError,
    LabKeyError,
    MeterKeys,
    Session,
    authentication_ciphertext,
    control_header,
    meter_keys,
    parse_master_key,
    write_header,
)

log = logging.getLogger(__name__)
WARNING = "software encryption service: laboratory/test/demo use only, NOT FOR PRODUCTION"


def create_key_file(path: Path) -> None:
    """Write a new random master key to ``path`` (created 0600; refuses to overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(16) + "\n")


def read_key_file(path: Path) -> bytes:
    """The master key in ``path``; ``EncryptionUnavailable`` if missing, loose or malformed."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise EncryptionUnavailable(f"esam key file {path}: {exc.strerror}") from None
    try:
        return parse_master_key(text, mode, str(path))
    except LabKeyError as exc:
        raise EncryptionUnavailable(f"esam key file {path} {exc}") from None


@dataclass
class SoftwareEncryptionService:
    """Implements ``EncryptionService`` in software (see the module docstring)."""

    key_file: Path
    name: str = "software"
    production_ready: bool = False
    _master: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._master = read_key_file(self.key_file)
        log.warning("%s (key file %s)", WARNING, self.key_file)

    def _keys(self, address: str) -> MeterKeys:
        try:
            return meter_keys(self._master, factor_of(address))
        except Dlt645EncodeError as exc:
            raise EncryptionRefused(str(exc)) from None

    def _session(self, session: SessionInfo) -> Session:
        c = session.challenge
        try:
            return Session.derive(
                self._keys(c.address), c.random1, session.random2, session.esam_serial
            )
        except LabCryptoError as exc:
            raise EncryptionRefused(str(exc)) from None

    def authenticate(self, address: str) -> Challenge:
        keys = self._keys(address)
        random1 = secrets.token_bytes(8)
        return Challenge(address, keys.factor, random1, authentication_ciphertext(keys, random1))

    def seal_control(
        self, session: SessionInfo, seq: int, action: int, valid_until: datetime
    ) -> bytes:
        plaintext = control_plaintext(action, valid_until)
        return self._session(session).seal(seq, control_header(session.address), plaintext)

    def seal_write(
        self, session: SessionInfo, seq: int, di: int, value: bytes, level: int
    ) -> bytes:
        keys = self._session(session)
        header = write_header(session.address, di)
        if level == LEVEL_MAC:
            return value + keys.mac_of(seq, header, value)
        if level == LEVEL_SEALED:
            return keys.seal(seq, header, value)
        raise EncryptionRefused(f"level {level:02X} is neither 98 nor 99")

    def verify_reply_mac(
        self, session: SessionInfo, seq: int, header: bytes, data: bytes, mac: bytes
    ) -> bool:
        try:
            self._session(session).verify(seq, header, data, mac)
        except LabCryptoError:
            return False
        return True
