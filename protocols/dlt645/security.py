"""Secured frames of cost-control meters with an ESAM (DL/T 645-2007 grid extension, 2013 filing).

A field meter accepts a relay command or a protected parameter write only inside a session that
the master opens with an identity authentication::

    03H  DI 070000FF | C0..C3 | ciphertext 1 (8) | random number 1 (8) | factor (8)   L = 32
    83H  DI 070000FF | random number 2 (4) | ESAM serial (8)                          L = 16
    C3H  SERR (2 bytes, least significant first: the security error word)
    03H  DI 070002FF | C0..C3                       (authentication invalidate)       L = 8
    83H  DI 070002FF | customer no. (6) | balance (4) | purchases (4) | key info (4)  L = 22
    1CH  98 P0P1P2 | C0..C3 | sealed (16-byte ciphertext of N1 N2 + valid-until, 4-byte MAC)
    14H  DI | 99 P0P1P2 | C0..C3 | value | MAC (4)        first-class parameter: plaintext + MAC
    14H  DI | 98 P0P1P2 | C0..C3 | ciphertext | MAC (4)   second-class parameter (e.g. clock)
    03H  DI 078001FF | C0..C3 | read-back identifier (8)  (data read-back, 数据回抄)    L = 16
    83H  DI 078001FF | identifier (8) | data (n) | MAC (4)                        L = 16 + n

The 83H authentication reply and the 9CH/94H acknowledgements carry no MAC; the data read-back
is the reply a meter authenticates (its MAC is checked by the encryption service).

Values from the encryption service are written most significant first (as the service returns
them); on the wire each field travels least significant byte first, like every multi-byte field
of DL/T 645 (the 1CH sealed block is reversed as one block).  Sources: docs/dlt645.md §Security.

The cryptography itself is the utility's secret (its encryption machine and the ESAM's keys):
nothing here computes a ciphertext or a MAC.  ``ControlSealer`` is the older seam that lets a
deployment wrap plaintext 1CH data synchronously (factory mode, tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from protocols.dlt645.control import Function, Version
from protocols.dlt645.errors import Dlt645EncodeError, Dlt645ValueError
from protocols.dlt645.fields import operator_bytes, password_bytes
from protocols.dlt645.frame import Frame
from protocols.dlt645.messages import (
    Authenticate,
    Authenticated,
    InvalidateAuthentication,
    ReadBack,
    ReadBackData,
    SecuredControl,
    SecuredWrite,
    SecurityReply,
    SetAuthenticationValidity,
)

if TYPE_CHECKING:
    from protocols.dlt645.messages import RemoteControl

SecuredRequest = (
    Authenticate
    | InvalidateAuthentication
    | SetAuthenticationValidity
    | SecuredControl
    | SecuredWrite
    | ReadBack
)

DI_AUTHENTICATE = 0x070000FF
DI_AUTH_VALIDITY = 0x070001FF  # set the session's validity (minutes, BCD) + MAC
DI_INVALIDATE = 0x070002FF
DI_READBACK = 0x078001FF  # data read-back (数据回抄): ESAM file data + MAC
READBACK_ID = 8  # directory (2), file (2), start (2), length (2)
LEVEL_SEALED = 0x98  # ciphertext + MAC (remote control, second-class parameters)
LEVEL_MAC = 0x99  # plaintext + MAC (first-class parameters)
AUTH_FIELD = 8  # ciphertext 1, random number 1, diversification factor
RANDOM2 = 4
ESAM_SERIAL = 8
MAC = 4
SEALED_CONTROL = 20  # 16-byte ciphertext + 4-byte MAC

# First-class parameters (level 99: plaintext + MAC, kept in the ESAM); every other protected
# parameter, the date and time included, is second class (level 98: ciphertext + MAC).  [1]
FIRST_CLASS_PREFIXES = ("040501", "040502")  # tariff prices, first and second set
FIRST_CLASS = frozenset(
    {0x04000108, 0x04000109, 0x04000306, 0x04000307, 0x04000402, 0x0400040E, 0x04001001,
     0x04001002, 0x040604FF, 0x040605FF}
)  # fmt: skip


def first_class(di: int) -> bool:
    """Whether identifier ``di`` is written at level 99 (plaintext + MAC)."""
    return di in FIRST_CLASS or f"{di:08X}".startswith(FIRST_CLASS_PREFIXES)


# The security error word (SERR) of an abnormal 03H reply, bit → reason (bits 7–15 reserved).
SECURITY_ERROR_BITS: tuple[str, ...] = (
    "other_error",
    "repeated_top_up",
    "esam_verification_failed",
    "authentication_failed",
    "customer_number_mismatch",
    "purchase_count_error",
    "purchase_over_hoard_limit",
    *(f"bit{n}" for n in range(7, 16)),
)


def security_reasons(word: int) -> tuple[str, ...]:
    """Named reasons of a security error word, one per set bit, low bit first."""
    return tuple(SECURITY_ERROR_BITS[bit] for bit in range(16) if word >> bit & 1)


def security_word(reasons: tuple[str, ...]) -> int:
    """The security error word carrying ``reasons`` (inverse of ``security_reasons``)."""
    return sum(1 << SECURITY_ERROR_BITS.index(r) for r in reasons)


def check_length(value: bytes, size: int, what: str) -> bytes:
    """``value`` if it has ``size`` bytes, else ``Dlt645EncodeError``."""
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise Dlt645EncodeError(f"{what} must be {size} bytes, got {value!r}")
    return bytes(value)


def readback_identifier(file: int, start: int, length: int, directory: int = 0xDF01) -> bytes:
    """The 8-byte read-back identifier (service's order): directory, file, start, length."""
    fields = (directory, file, start, length)
    if not all(isinstance(v, int) and 0 <= v <= 0xFFFF for v in fields) or not 0 < length <= 200:
        raise Dlt645EncodeError(f"read-back identifier {fields!r} out of range")
    return b"".join(v.to_bytes(2, "big") for v in fields)


def factor_of(meter_number: str) -> bytes:
    """The diversification factor of a meter: ``0000`` + its 12-digit number, as 8 bytes."""
    if len(meter_number) != 12 or not meter_number.isdigit():
        raise Dlt645EncodeError(f"meter number {meter_number!r} is not 12 digits")
    return bytes.fromhex("0000" + meter_number)


def _password(password: str, level: int) -> bytes:
    raw = password_bytes(password)
    if raw[0] != level:
        raise Dlt645EncodeError(f"password {password!r} is not level {level:02X}")
    return raw


def _di(di: int) -> bytes:
    if not isinstance(di, int) or not 0 <= di <= 0xFFFFFFFF:
        raise Dlt645EncodeError(f"data identifier {di!r} is not 4 bytes")
    return di.to_bytes(4, "little")


def encode_secured(request: SecuredRequest) -> tuple[Function, bytes]:
    """Function and data field (before +33H) of a secured request (2007 only)."""
    operator = operator_bytes(request.operator)
    match request:
        case Authenticate(_, ciphertext1, random1, factor):
            fields = (
                (ciphertext1, "ciphertext 1"),
                (random1, "random number 1"),
                (factor, "factor"),
            )
            body = b"".join(check_length(v, AUTH_FIELD, what)[::-1] for v, what in fields)
            return Function.SECURITY, _di(DI_AUTHENTICATE) + operator + body
        case InvalidateAuthentication():
            return Function.SECURITY, _di(DI_INVALIDATE) + operator
        case ReadBack(_, identifier):
            body = check_length(identifier, READBACK_ID, "read-back identifier")[::-1]
            return Function.SECURITY, _di(DI_READBACK) + operator + body
        case SetAuthenticationValidity(_, minutes, mac):
            if not isinstance(minutes, int) or not 1 <= minutes <= 9999:
                raise Dlt645EncodeError(f"validity {minutes!r} is not 1-9999 minutes")
            bcd = bytes.fromhex(f"{minutes:04d}")[::-1]
            body = bcd + check_length(mac, MAC, "MAC")[::-1]
            return Function.SECURITY, _di(DI_AUTH_VALIDITY) + operator + body
        case SecuredControl(_, sealed, password):
            block = check_length(sealed, SEALED_CONTROL, "sealed control")[::-1]
            return Function.REMOTE_CONTROL, _password(password, LEVEL_SEALED) + operator + block
        case SecuredWrite(_, di, payload, password):
            level = password_bytes(password)[0]
            if level not in (LEVEL_MAC, LEVEL_SEALED) or len(payload) <= MAC:
                raise Dlt645EncodeError(
                    f"a secured write needs level 98 or 99 and data + a {MAC}-byte MAC"
                )
            # 99: the value as the data table encodes it, then the MAC reversed; 98: all reversed
            wire = payload[:-MAC] + payload[-MAC:][::-1] if level == LEVEL_MAC else payload[::-1]
            return Function.WRITE, _di(di) + _password(password, level) + operator + wire
    raise Dlt645EncodeError(f"{request!r} is not a secured request")


def _text(raw: bytes) -> str:
    return raw.hex().upper()


def decode_secured_request(frame: Frame, function: Function) -> SecuredRequest | None:
    """The secured request in a master's frame, or None when the frame is not one."""
    data, address = frame.data, frame.address
    if function is Function.SECURITY and len(data) >= 8:
        di = int.from_bytes(data[:4], "little")
        operator = _text(data[4:8][::-1])
        if di == DI_AUTHENTICATE and len(data) == 32:
            c1, r1, f = (data[n : n + 8][::-1] for n in (8, 16, 24))
            return Authenticate(address, c1, r1, f, operator)
        if di == DI_INVALIDATE and len(data) == 8:
            return InvalidateAuthentication(address, operator)
        if di == DI_READBACK and len(data) == 16:
            return ReadBack(address, data[8:16][::-1], operator)
        if di == DI_AUTH_VALIDITY and len(data) == 14:
            minutes = int(data[8:10][::-1].hex())  # ValueError (not BCD): an OtherRequest
            return SetAuthenticationValidity(address, minutes, data[10:14][::-1], operator)
        return None
    if function is Function.REMOTE_CONTROL and len(data) == 8 + SEALED_CONTROL:
        if data[0] != LEVEL_SEALED:
            return None
        password = _text(data[:1] + data[1:4][::-1])
        return SecuredControl(address, data[8:][::-1], password, _text(data[4:8][::-1]))
    if function is Function.WRITE and len(data) > 12 + MAC and data[4] in (LEVEL_MAC, LEVEL_SEALED):
        di = int.from_bytes(data[:4], "little")
        password = _text(data[4:5] + data[5:8][::-1])
        raw = data[12:]
        payload = raw[:-MAC] + raw[-MAC:][::-1] if data[4] == LEVEL_MAC else raw[::-1]
        return SecuredWrite(address, di, payload, password, _text(data[8:12][::-1]))
    return None


def encode_security_reply(reply: Authenticated | SecurityReply | ReadBackData) -> bytes:
    """Data field of a normal 83H reply."""
    if isinstance(reply, ReadBackData):
        identifier = check_length(reply.identifier, READBACK_ID, "read-back identifier")
        if not reply.data:
            raise Dlt645EncodeError("a read-back reply carries data")
        mac = check_length(reply.mac, MAC, "MAC")
        return _di(DI_READBACK) + identifier[::-1] + reply.data[::-1] + mac[::-1]
    if isinstance(reply, Authenticated):
        r2 = check_length(reply.random2, RANDOM2, "random number 2")
        serial = check_length(reply.esam_serial, ESAM_SERIAL, "ESAM serial")
        return _di(DI_AUTHENTICATE) + r2[::-1] + serial[::-1]
    return _di(reply.di) + reply.data


def decode_security_reply(
    frame: Frame, version: Version = Version.V2007
) -> Authenticated | SecurityReply | ReadBackData:
    """The typed normal 83H reply; ``Dlt645ValueError`` if it has no identifier."""
    data = frame.data
    if len(data) < 4:
        raise Dlt645ValueError(f"security reply of {len(data)} bytes has no identifier", frame)
    di = int.from_bytes(data[:4], "little")
    if di == DI_AUTHENTICATE:
        if len(data) != 4 + RANDOM2 + ESAM_SERIAL:
            raise Dlt645ValueError(
                f"authentication reply of {len(data)} bytes (16 expected)", frame
            )
        return Authenticated(frame.address, data[4:8][::-1], data[8:16][::-1], version)
    if di == DI_READBACK:
        if len(data) <= 4 + READBACK_ID + MAC:
            raise Dlt645ValueError(f"read-back reply of {len(data)} bytes has no data", frame)
        identifier, body, mac = data[4:12], data[12:-MAC], data[-MAC:]
        return ReadBackData(frame.address, identifier[::-1], body[::-1], mac[::-1], version)
    return SecurityReply(frame.address, di, data[4:], version)


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
