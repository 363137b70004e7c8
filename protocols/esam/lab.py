"""Taiqu's laboratory ESAM scheme, SM4-based: for laboratories, tests and the demo, NOT production.

The real scheme is the utility's secret: the keys live in its encryption machine (密码机) and in
each meter's ESAM, and the algorithm (SM1 in older meters) is not public.  So that a laboratory can
run the whole secured flow end to end, Taiqu defines its own scheme, documented here and in
docs/dlt645.md §Security, with the frame layouts of the real one (8-byte ciphertext 1, random
number 1 and factor; 4-byte random number 2; 20-byte sealed control; 4-byte MACs):

- **Diversification**: factor ``F`` = ``0000`` + the meter number (8 bytes); the meter key is
  ``Km = SM4_K(F ‖ ¬F)`` under the 16-byte master key ``K``.  Three purpose keys follow:
  ``Ka, Ke, Kx = SM4_Km(label)`` for the labels ``auth``, ``enc``, ``mac`` (zero-padded to 16).
- **Authentication**: ``ciphertext 1 = SM4_Ka(R1 ‖ F)[:8]`` for the master's random number R1.
- **Session**: after a successful authentication the ESAM draws random number 2 (R2, 4 bytes);
  with ``S = R2 ‖ R1[:4] ‖ ESAM serial`` the session keys are ``Ks = SM4_Ke(S)`` and
  ``Kms = SM4_Kx(S)``.  Each sealed frame of the session carries its sequence number ``n``
  (0, 1, …) inside the MAC, so a replayed frame fails.
- **Seal** (1CH, level-98 writes): ``C = SM4-CBC_Ks(IV 0, ISO/IEC 9797-1 padding 2)(plaintext)``,
  ``MAC = CBC-MAC_Kms(n ‖ header ‖ C)[:4]``; the sealed block is ``C ‖ MAC`` (20 bytes for 1CH).
- **MAC only** (level-99 writes, replies): ``MAC = CBC-MAC_Kms(n ‖ header ‖ value)[:4]``.
  A reply's MAC (the 078001FF data read-back) carries ``n`` = the sealed frames the ESAM has
  accepted in the session so far, so it also proves how many of the master's frames it opened.

``header`` binds a frame to its meter and function: the 6 address bytes (nameplate order), the
control code and, for writes, the identifier (4 bytes, most significant first).

The master key ``K`` is kept in a key file of 32 hex digits that only its owner may read (0600);
the head-end's software service and the simulator's ESAM read the same file
(``parse_master_key`` checks what they read).
"""

from __future__ import annotations

import hmac
import stat
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
MAC_SIZE = 4
_ZERO_IV = bytes(BLOCK)


class LabCryptoError(ValueError):
    """A MAC or ciphertext does not verify (or an input has the wrong size)."""


class LabKeyError(ValueError):
    """A master key file that others may read or that does not hold 32 hex digits."""


def parse_master_key(text: str, mode: int, path: str) -> bytes:
    """The master key in key file ``path`` from its text and mode bits; ``LabKeyError`` says
    which rule fails ("must be 0600 (chmod 600 <path>)", "must hold 32 hex digits")."""
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LabKeyError(f"must be 0600 (chmod 600 {path})")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != BLOCK:
        raise LabKeyError("must hold 32 hex digits")
    return key


def _ecb(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # one block: a PRF call
    return encryptor.update(block) + encryptor.finalize()


def _pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80 then zeros to a whole block."""
    data += b"\x80"
    return data + bytes(-len(data) % BLOCK)


def _unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise LabCryptoError("ciphertext does not decrypt to padded plaintext")
    return stripped[:-1]


def _cbc(key: bytes, data: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.SM4(key), modes.CBC(_ZERO_IV))
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def _cbc_mac(key: bytes, data: bytes) -> bytes:
    return _cbc(key, _pad(data))[-BLOCK:][:MAC_SIZE]


def _label(text: str) -> bytes:
    return text.encode().ljust(BLOCK, b"\x00")


def _size(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise LabCryptoError(f"{what} must be {size} bytes, got {len(value)}")
    return value


@dataclass(frozen=True)
class MeterKeys:
    """One meter's diversified keys (never leave the service or the ESAM)."""

    factor: bytes
    auth: bytes
    enc: bytes
    mac: bytes

    def __repr__(self) -> str:  # keys never reach a log
        return f"MeterKeys(factor={self.factor.hex()})"


def meter_keys(master: bytes, factor: bytes) -> MeterKeys:
    """Diversify ``master`` (16 bytes) by ``factor`` (8 bytes)."""
    _size(master, BLOCK, "master key")
    _size(factor, 8, "diversification factor")
    km = _ecb(master, factor + bytes(b ^ 0xFF for b in factor))
    return MeterKeys(
        factor, _ecb(km, _label("auth")), _ecb(km, _label("enc")), _ecb(km, _label("mac"))
    )


def authentication_ciphertext(keys: MeterKeys, random1: bytes) -> bytes:
    """Ciphertext 1 for random number 1 (8 bytes each)."""
    return _ecb(keys.auth, _size(random1, 8, "random number 1") + keys.factor)[:8]


def control_header(address: str, control: int = 0x1C) -> bytes:
    """The header a 1CH MAC covers: the meter's address and the control code."""
    return bytes.fromhex(address) + bytes((control,))


def reply_header(address: str, di: int, control: int = 0x83) -> bytes:
    """The header a reply's MAC covers: address, the reply's control code and identifier."""
    return bytes.fromhex(address) + bytes((control,)) + di.to_bytes(4, "big")


def write_header(address: str, di: int) -> bytes:
    """The header a 14H MAC covers: address, control code 14H and the identifier."""
    return bytes.fromhex(address) + b"\x14" + di.to_bytes(4, "big")


@dataclass(frozen=True)
class Session:
    """The keys of one authenticated session (both sides derive the same)."""

    enc: bytes
    mac: bytes

    def __repr__(self) -> str:
        return "Session(…)"

    @classmethod
    def derive(cls, keys: MeterKeys, random1: bytes, random2: bytes, esam_serial: bytes) -> Session:
        block = (
            _size(random2, 4, "random number 2")
            + _size(random1, 8, "random number 1")[:4]
            + _size(esam_serial, 8, "ESAM serial")
        )
        return cls(_ecb(keys.enc, block), _ecb(keys.mac, block))

    def mac_of(self, seq: int, header: bytes, data: bytes) -> bytes:
        """The 4-byte MAC of frame ``seq`` of the session."""
        return _cbc_mac(self.mac, seq.to_bytes(2, "big") + header + data)

    def seal(self, seq: int, header: bytes, plaintext: bytes) -> bytes:
        """Ciphertext ‖ MAC of ``plaintext`` as frame ``seq`` of the session."""
        ciphertext = _cbc(self.enc, _pad(plaintext))
        return ciphertext + self.mac_of(seq, header, ciphertext)

    def open(self, seq: int, header: bytes, sealed: bytes) -> bytes:
        """The plaintext of a sealed block; ``LabCryptoError`` if its MAC or padding is wrong."""
        ciphertext, mac = sealed[:-MAC_SIZE], sealed[-MAC_SIZE:]
        if not ciphertext or len(ciphertext) % BLOCK:
            raise LabCryptoError(f"ciphertext of {len(ciphertext)} bytes is not whole blocks")
        self.verify(seq, header, ciphertext, mac)
        return _unpad(_cbc(self.enc, ciphertext, decrypt=True))

    def verify(self, seq: int, header: bytes, data: bytes, mac: bytes) -> None:
        """``LabCryptoError`` unless ``mac`` is the MAC of ``data`` as frame ``seq``."""
        if not hmac.compare_digest(self.mac_of(seq, header, data), mac):
            raise LabCryptoError("MAC does not verify")
