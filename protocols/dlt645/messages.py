"""Typed requests (master → meter) and replies (meter → master), frozen dataclasses.

``version=None`` on a message means "the connection's version".  Addresses are nameplate-order
strings (``normalize_address`` accepts ints and spaced forms at the edges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from protocols.dlt645.control import Function, Version
from protocols.dlt645.frame import BROADCAST, WILDCARD


class ControlAction(IntEnum):
    """Remote-control command N1 of function 1CH."""

    TRIP = 0x1A
    CLOSE_ALLOWED = 0x1B  # the customer closes the relay with the meter's button
    CLOSE_DIRECT = 0x1C
    ALARM = 0x2A
    ALARM_RELEASE = 0x2B
    KEEP_POWER = 0x3A  # 保电: relay held closed whatever the balance
    KEEP_POWER_RELEASE = 0x3B


BAUD_BITS: dict[int, int] = {600: 0x02, 1200: 0x04, 2400: 0x08, 4800: 0x10, 9600: 0x20, 19200: 0x40}
DEFAULT_PASSWORD = "02000000"  # level 02, password 000000 (common factory setting)
DEFAULT_OPERATOR = "00000000"


@dataclass(frozen=True, slots=True)
class FreezeTime:
    """When a freeze happens: ``None`` fields are 99 (any): all ``None`` = freeze now."""

    month: int | None = None
    day: int | None = None
    hour: int | None = None
    minute: int | None = None


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class ReadData:
    """Read one identifier (11H; 1997: 01H)."""

    address: str
    di: int
    version: Version | None = None
    params: bytes = b""  # extra request bytes after the DI (load-profile count/time [?])


@dataclass(frozen=True, slots=True)
class ReadFollowUp:
    """Ask for the next frame of a multi-frame reply (12H with SEQ; 1997: 02H, no SEQ)."""

    address: str
    di: int
    seq: int = 1
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ReadAddress:
    """Read the address of the only meter on the bus (13H to AA…AA; 2007 only)."""

    address: str = WILDCARD
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class BroadcastTimeSync:
    """Set every meter's clock (08H to 99…99, no reply); ``when`` is naive meter-local."""

    when: datetime
    address: str = BROADCAST
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class WriteData:
    """Write one identifier (14H; 1997: 04H): password ``LLPPPPPP``, operator 8 hex digits."""

    address: str
    di: int
    value: Any
    password: str = DEFAULT_PASSWORD
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class WriteAddress:
    """Set the address of the only meter on the bus (15H; 1997: 0AH)."""

    new_address: str
    address: str = WILDCARD
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class Freeze:
    """Freeze now (all 99) or on a schedule (16H; broadcast allowed; 2007 only)."""

    address: str
    when: FreezeTime | datetime | None = None
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ChangeBaud:
    """Change the meter's baud rate (17H; 1997: 0CH)."""

    address: str
    baud: int
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class RemoteControl:
    """Relay, alarm or keep-power command (1CH): ignored by the meter after ``valid_until``."""

    address: str
    action: ControlAction
    password: str = DEFAULT_PASSWORD
    operator: str = DEFAULT_OPERATOR
    valid_until: datetime | None = None  # naive meter-local; required when encoding
    version: Version | None = None
    payload: bytes = b""  # set when decoded from ciphertext (see ``security``)


@dataclass(frozen=True, slots=True)
class Authenticate:
    """ESAM identity authentication (03H, DI 070000FF) with the encryption service's values.

    ``ciphertext1``, ``random1`` and ``factor`` (8 bytes each) are in the service's order (most
    significant first); the codec sends each least significant byte first (see ``security``).
    """

    address: str
    ciphertext1: bytes
    random1: bytes
    factor: bytes
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class InvalidateAuthentication:
    """End the meter's authenticated session now (03H, DI 070002FF)."""

    address: str
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class SetAuthenticationValidity:
    """Set how long an authentication stays valid (03H, DI 070001FF): minutes + MAC.

    ``minutes`` (1–9999, BCD on the wire) and ``mac`` (4 bytes, the service's order) travel
    least significant byte first; the meter answers 83H with the identifier only.
    """

    address: str
    minutes: int
    mac: bytes
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class SecuredControl:
    """Remote control sealed by the encryption service (1CH, level 98: ciphertext + MAC).

    ``sealed`` is the service's 20-byte block (16-byte ciphertext of N1 N2 + valid-until, then a
    4-byte MAC), most significant first; it travels reversed.
    """

    address: str
    sealed: bytes
    password: str = "98000000"
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class SecuredWrite:
    """A protected parameter write (14H): level 99 = value + MAC, level 98 = ciphertext + MAC.

    ``payload`` is in the service's order: for 99 the value's plaintext bytes as the data table
    encodes them (least significant first, as on the wire) followed by the MAC most significant
    first; for 98 the sealed block most significant first.
    """

    address: str
    di: int
    payload: bytes
    password: str = "99000000"
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ReadBack:
    """ESAM data read-back (03H, DI 078001FF, 数据回抄) inside an authenticated session.

    ``identifier`` (8 bytes, service's order): directory (2), file (2), start (2), length (2),
    e.g. ``DF01 0008 0000 0008`` (``readback_identifier``); it travels reversed.  The meter
    answers ``ReadBackData``: the data and the ESAM's MAC over it.
    """

    address: str
    identifier: bytes
    operator: str = DEFAULT_OPERATOR
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class OtherRequest:
    """A request Taiqu has no type for (clear meter, change password, security …)."""

    address: str
    function: Function
    control: int
    data: bytes
    version: Version | None = None


Request = (
    ReadData
    | ReadFollowUp
    | ReadAddress
    | BroadcastTimeSync
    | WriteData
    | WriteAddress
    | Freeze
    | ChangeBaud
    | RemoteControl
    | Authenticate
    | InvalidateAuthentication
    | SetAuthenticationValidity
    | SecuredControl
    | SecuredWrite
    | ReadBack
    | OtherRequest
)

# ---------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class ReadReply:
    """Data read from a meter: ``values`` keyed by canonical quantity (or member name).

    ``raw`` keeps the value bytes (offset removed, without DI and SEQ); an identifier not in
    the table decodes to empty ``values`` with ``raw`` intact.
    """

    address: str
    di: int
    values: Mapping[str, Any] = field(default_factory=dict)
    follow_up: bool = False  # more frames follow: send ReadFollowUp
    seq: int | None = None  # frame number of a follow-up reply (12H)
    raw: bytes | None = None  # encoding: sent as is instead of ``values`` when set
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class AbnormalReply:
    """The meter refused: error byte and its named reasons."""

    address: str
    function: Function
    error: int
    reasons: tuple[str, ...] = ()
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class AddressReply:
    """Reply to read address (93H)."""

    address: str
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class WriteAck:
    """Write accepted (94H; 1997: 84H)."""

    address: str
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class WriteAddressAck:
    """Address changed (95H)."""

    address: str
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class FreezeAck:
    """Freeze accepted (96H)."""

    address: str
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class BaudAck:
    """Baud rate change accepted (97H + feature byte)."""

    address: str
    baud: int
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ControlAck:
    """Remote control accepted (9CH)."""

    address: str
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Identity authentication passed (83H): the ESAM's random number 2 and serial number.

    Both in the service's order (most significant first; the wire carries them reversed).
    """

    address: str
    random2: bytes
    esam_serial: bytes
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class SecurityReply:
    """Another normal 83H reply: its identifier and the data after it (e.g. invalidate)."""

    address: str
    di: int
    data: bytes = b""
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ReadBackData:
    """ESAM data read back (83H, DI 078001FF): the identifier echoed, the data, the MAC.

    All three in the service's order (each travels reversed); the head-end's encryption service
    checks ``mac`` against the session (``EncryptionService.verify_reply_mac``).
    """

    address: str
    identifier: bytes
    data: bytes
    mac: bytes
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class OtherReply:
    """A reply Taiqu has no type for."""

    address: str
    function: Function
    control: int
    data: bytes
    version: Version | None = None


Reply = (
    ReadReply
    | AbnormalReply
    | AddressReply
    | WriteAck
    | WriteAddressAck
    | FreezeAck
    | BaudAck
    | ControlAck
    | Authenticated
    | SecurityReply
    | ReadBackData
    | OtherReply
)
