"""Typed requests and replies ⇄ frames, for both versions (used by ``Master`` and ``Slave``).

Data fields (before the +33H offset; multi-byte fields least significant byte first):

====================  ==============================================================
read 11H / 01H        DI [+ params]            reply 91H/B1H: DI + value
read follow-up 12H    DI + SEQ (1997 02H: DI)  reply 92H/B2H: DI + value + SEQ
read address 13H      —                        reply 93H: address
broadcast time 08H    ss mm hh DD MM YY        no reply
write 14H / 04H       DI + PA P0P1P2 + C0..C3 (1997: no operator) + value   reply 94H / 84H
write address 15H/0AH new address              reply 95H / 8AH
freeze 16H            mm hh DD MM (99 = any)   reply 96H
change baud 17H/0CH   Z (one bit per rate)     reply 97H/8CH + Z
remote control 1CH    PA P0P1P2 + C0..C3 + N1 + N2 + ss mm hh DD MM YY      reply 9CH
abnormal reply        C | C0H, one error byte
====================  ==============================================================

Password ``LLPPPPPP``: level byte PA, then the 6-digit password least significant byte first [?];
operator code: 8 hex digits, least significant byte first [?] (``fields``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from protocols.dlt645.control import (
    ABNORMAL_BIT,
    DIRECTION_BIT,
    FOLLOW_UP_BIT,
    FUNCTIONS,
    Function,
    Version,
    error_reasons,
)
from protocols.dlt645.data_ids import encode_value, encode_values, find_data_id, row_values
from protocols.dlt645.errors import Dlt645EncodeError, Dlt645Error, Dlt645ValueError
from protocols.dlt645.fields import (
    STAMP,
    di_bytes,
    function_code,
    operator_bytes,
    password_bytes,
    password_text,
    stamp_bytes,
)
from protocols.dlt645.frame import Frame, address_from_wire, address_to_wire
from protocols.dlt645.messages import (
    BAUD_BITS,
    AbnormalReply,
    AddressReply,
    Authenticate,
    Authenticated,
    BaudAck,
    BroadcastTimeSync,
    ChangeBaud,
    ControlAck,
    ControlAction,
    Freeze,
    FreezeAck,
    FreezeTime,
    InvalidateAuthentication,
    OtherReply,
    OtherRequest,
    ReadAddress,
    ReadBack,
    ReadBackData,
    ReadData,
    ReadFollowUp,
    ReadReply,
    RemoteControl,
    Reply,
    Request,
    SecuredControl,
    SecuredWrite,
    SecurityReply,
    SetAuthenticationValidity,
    WriteAck,
    WriteAddress,
    WriteAddressAck,
    WriteData,
)
from protocols.dlt645.security import (
    PLAINTEXT,
    ControlSealer,
    decode_secured_request,
    decode_security_reply,
    encode_secured,
    encode_security_reply,
    security_reasons,
)
from protocols.model import DEFAULT_METER_ZONE

V7 = Version.V2007
_BAUDS = {z: baud for baud, z in BAUD_BITS.items()}
_F2007, _F1997 = FUNCTIONS[Version.V2007], FUNCTIONS[Version.V1997]


def _freeze_bytes(when: FreezeTime | datetime | None) -> bytes:
    if isinstance(when, datetime):
        when = FreezeTime(when.month, when.day, when.hour, when.minute)
    when = when or FreezeTime()
    out = []
    for value, hi in ((when.minute, 59), (when.hour, 23), (when.day, 31), (when.month, 12)):
        if value is not None and not 0 <= value <= hi:
            raise Dlt645EncodeError(f"freeze time field {value} out of range")
        out.append(0x99 if value is None else int(f"{value:02d}", 16))
    return bytes(out)


def _value_bytes(di: int, value: Any, version: Version) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return encode_value(di, value, version)


def control_plaintext(request: RemoteControl) -> bytes:
    """The plaintext 1CH data field of ``request``."""
    return (
        password_bytes(request.password)
        + operator_bytes(request.operator)
        + bytes((int(ControlAction(request.action)), 0))
        + stamp_bytes(request.valid_until, "remote control valid-until")
    )


def encode_request(
    request: Request, version: Version = V7, sealer: ControlSealer = PLAINTEXT
) -> Frame:
    """The frame of ``request`` (``Dlt645EncodeError`` if it cannot be expressed)."""
    version = request.version or version
    if type(request) is ReadData:  # the gateway's hot path: no pattern matching, no enum hashing
        di = request.di
        if 0 <= di <= 0xFFFFFFFF and (version is V7 or di <= 0xFFFF):
            payload = di.to_bytes(4 if version is V7 else 2, "little") + request.params
            return Frame(request.address, 0x11 if version is V7 else 0x01, payload)
    data: bytes
    match request:
        case ReadData(address, di, _, params):
            function, data = Function.READ, di_bytes(di, version) + params
        case ReadFollowUp(address, di, seq, _):
            function = Function.READ_FOLLOW_UP
            data = di_bytes(di, version)
            if version is V7:
                if not 0 <= seq <= 0xFF:
                    raise Dlt645EncodeError(f"follow-up sequence {seq} is not a byte")
                data += bytes((seq,))
        case ReadAddress(address, _):
            function, data = Function.READ_ADDRESS, b""
        case BroadcastTimeSync(when, address, _):
            function, data = Function.BROADCAST_TIME, stamp_bytes(when, "time sync")
        case WriteData(address, di, value, password, operator, _):
            function = Function.WRITE
            data = di_bytes(di, version) + password_bytes(password)
            if version is V7:
                data += operator_bytes(operator)
            data += _value_bytes(di, value, version)
        case WriteAddress(new_address, address, _):
            function, data = Function.WRITE_ADDRESS, address_to_wire(new_address)
        case Freeze(address, when, _):
            function, data = Function.FREEZE, _freeze_bytes(when)
        case ChangeBaud(address, baud, _):
            if baud not in BAUD_BITS:
                raise Dlt645EncodeError(f"baud rate {baud} is not one of {sorted(BAUD_BITS)}")
            function, data = Function.CHANGE_BAUD, bytes((BAUD_BITS[baud],))
        case RemoteControl():
            address, function = request.address, Function.REMOTE_CONTROL
            data = request.payload or sealer.seal(request, control_plaintext(request))
        case (
            Authenticate()
            | InvalidateAuthentication()
            | SetAuthenticationValidity()
            | SecuredControl()
            | SecuredWrite()
            | ReadBack()
        ):
            if version is not V7:
                raise Dlt645EncodeError("secured frames exist in DL/T 645-2007 only")
            address = request.address
            function, data = encode_secured(request)
        case OtherRequest(address, _, control, data, _):
            return Frame(address, control & ~DIRECTION_BIT, data)
        case _:
            raise Dlt645EncodeError(f"{request!r} is not a DL/T 645 request")
    return Frame(address, function_code(function, version), data)


def decode_request(frame: Frame, version: Version = V7, zone: str = DEFAULT_METER_ZONE) -> Request:
    """The typed request in a master's frame; malformed data gives an ``OtherRequest``."""
    function = (_F2007 if version is V7 else _F1997).get(frame.control & 0x1F, Function.UNKNOWN)
    try:
        request: Request | None = None
        if version is V7:
            request = decode_secured_request(frame, function)
        if request is None:
            request = _decode_request(frame, function, version, zone)
    except (Dlt645Error, ValueError):
        request = None
    if request is None:
        return OtherRequest(frame.address, function, frame.control, frame.data, version)
    return request


def _decode_request(
    frame: Frame, function: Function, version: Version, zone: str
) -> Request | None:
    data, address, n = frame.data, frame.address, version.di_length
    di = int.from_bytes(data[:n], "little")
    size = len(data)
    if function is Function.READ and size >= n:
        return ReadData(address, di, version, data[n:])
    if function is Function.READ_FOLLOW_UP and size == n + (version is V7):
        return ReadFollowUp(address, di, data[n] if version is V7 else 1, version)
    if function is Function.READ_ADDRESS and size == 0:
        return ReadAddress(address, version)
    if function is Function.BROADCAST_TIME and size == 6:
        when = STAMP.decode(data, zone)
        return None if when is None else BroadcastTimeSync(when.local, address, version)
    if function is Function.WRITE and size >= n + (8 if version is V7 else 4):
        pos = n + 4
        operator = ""
        if version is V7:
            operator, pos = data[n + 4 : n + 8][::-1].hex().upper(), n + 8
        raw = data[pos:]
        value: Any = raw
        row = find_data_id(di, version)
        if row is not None and row.valid_length(len(raw)):
            value = row.layout.decode(raw, zone)
        return WriteData(address, di, value, password_text(data[n : n + 4]), operator, version)
    if function is Function.WRITE_ADDRESS and size == 6:
        return WriteAddress(address_from_wire(data), address, version)
    if function is Function.FREEZE and size == 4:
        f = [None if b == 0x99 else int(f"{b:02x}") for b in data]
        return Freeze(address, FreezeTime(f[3], f[2], f[1], f[0]), version)
    if function is Function.CHANGE_BAUD and size == 1 and data[0] in _BAUDS:
        return ChangeBaud(address, _BAUDS[data[0]], version)
    if function is Function.REMOTE_CONTROL and size == 16:
        until = STAMP.decode(data[10:16], zone)
        return RemoteControl(
            address,
            ControlAction(data[8]),
            password_text(data[0:4]),
            data[4:8][::-1].hex().upper(),
            until.local if until else None,
            version,
        )
    return None


def encode_reply(reply: Reply, version: Version = V7) -> Frame:
    """The frame a meter sends for ``reply``."""
    version = reply.version or version
    reply_bit = DIRECTION_BIT
    data = b""
    match reply:
        case ReadReply(address, di, values, follow_up, seq, raw, _):
            function = Function.READ if seq is None else Function.READ_FOLLOW_UP
            value = raw if raw is not None else encode_values(di, dict(values), version)
            data = di_bytes(di, version) + value
            if seq is not None and version is V7:
                data += bytes((seq,))
            if follow_up:
                reply_bit |= FOLLOW_UP_BIT
        case AbnormalReply(address, function, error, _, _):
            size = 2 if function is Function.SECURITY and version is V7 else 1
            if not 0 <= error < 1 << 8 * size:
                raise Dlt645EncodeError(f"error {error} does not fit {size} byte(s)")
            reply_bit |= ABNORMAL_BIT
            data = error.to_bytes(size, "little")
        case Authenticated(address) | SecurityReply(address) | ReadBackData(address):
            function, data = Function.SECURITY, encode_security_reply(reply)
        case AddressReply(address, _):
            function, data = Function.READ_ADDRESS, address_to_wire(address)
        case WriteAck(address, _):
            function = Function.WRITE
        case WriteAddressAck(address, _):
            function = Function.WRITE_ADDRESS
        case FreezeAck(address, _):
            function = Function.FREEZE
        case BaudAck(address, baud, _):
            if baud not in BAUD_BITS:
                raise Dlt645EncodeError(f"baud rate {baud} is not one of {sorted(BAUD_BITS)}")
            function, data = Function.CHANGE_BAUD, bytes((BAUD_BITS[baud],))
        case ControlAck(address, _):
            function = Function.REMOTE_CONTROL
        case OtherReply(address, _, control, data, _):
            return Frame(address, control | DIRECTION_BIT, data)
        case _:
            raise Dlt645EncodeError(f"{reply!r} is not a DL/T 645 reply")
    return Frame(address, function_code(function, version) | reply_bit, data)


def join_replies(replies: Sequence[ReadReply], zone: str = DEFAULT_METER_ZONE) -> ReadReply:
    """One reply from the frames of a multi-frame read (first frame, then each follow-up).

    The value bytes are joined in order and decoded once; ``Dlt645ValueError`` if the frames
    are of different identifiers or meters, or if the joined value does not decode.
    """
    if not replies:
        raise Dlt645ValueError("no frames to join")
    first = replies[0]
    version = first.version or V7
    if any(r.di != first.di or r.address != first.address for r in replies):
        raise Dlt645ValueError("follow-up frames of different identifiers or meters")
    raw = b"".join(r.raw or b"" for r in replies)
    row = find_data_id(first.di, version)
    values: dict[str, Any] = {}
    if row is not None:
        try:
            values = row_values(row, raw, zone)
        except Dlt645Error as exc:
            raise Dlt645ValueError(f"joined follow-up frames: {exc}") from None
    return ReadReply(first.address, first.di, values, False, None, raw, version)


_ACKS: dict[Function, type[WriteAck | WriteAddressAck | FreezeAck | ControlAck]] = {
    Function.WRITE: WriteAck,
    Function.WRITE_ADDRESS: WriteAddressAck,
    Function.FREEZE: FreezeAck,
    Function.REMOTE_CONTROL: ControlAck,
}


def decode_reply(frame: Frame, version: Version = V7, zone: str = DEFAULT_METER_ZONE) -> Reply:
    """The typed reply in a meter's frame; ``Dlt645ValueError`` if its value is malformed."""
    function = (_F2007 if version is V7 else _F1997).get(frame.control & 0x1F, Function.UNKNOWN)
    data, address = frame.data, frame.address
    if frame.control & ABNORMAL_BIT:
        if function is Function.SECURITY and version is V7:  # the 2-byte security error word
            word = int.from_bytes(data[:2], "little")
            return AbnormalReply(address, function, word, security_reasons(word), version)
        error = data[0] if data else 0
        return AbnormalReply(address, function, error, error_reasons(error, version), version)
    if function is Function.SECURITY and version is V7:
        return decode_security_reply(frame, version)
    if function is Function.READ or function is Function.READ_FOLLOW_UP:
        n = version.di_length
        seq = None
        if len(data) < n:
            raise Dlt645ValueError(f"read reply of {len(data)} bytes has no identifier", frame)
        if function is Function.READ_FOLLOW_UP and version is V7:
            if len(data) < n + 1:
                raise Dlt645ValueError("follow-up reply has no sequence number", frame)
            seq, data = data[-1], data[:-1]
        di = int.from_bytes(data[:n], "little")
        raw = data[n:]
        values: dict[str, Any] = {}
        row = find_data_id(di, version)
        follow = bool(frame.control & FOLLOW_UP_BIT)
        if row is not None and not follow and seq is None:
            try:
                values = row_values(row, raw, zone)
            except Dlt645Error as exc:
                raise Dlt645ValueError(str(exc), frame) from None
        elif row is not None and row.valid_length(len(raw)):
            # one frame of several: decoded on its own only where it happens to hold a whole
            # value; ``join_replies`` decodes the joined frames
            try:
                values = row_values(row, raw, zone)
            except Dlt645Error:
                values = {}
        return ReadReply(address, di, values, follow, seq, raw, version)
    if function is Function.READ_ADDRESS and len(data) == 6:
        return AddressReply(address_from_wire(data), version)
    if function is Function.CHANGE_BAUD and len(data) == 1 and data[0] in _BAUDS:
        return BaudAck(address, _BAUDS[data[0]], version)
    ack = _ACKS.get(function)
    if ack is not None:
        return ack(address, version)
    return OtherReply(address, function, frame.control, data, version)
