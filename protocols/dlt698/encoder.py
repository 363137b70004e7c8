"""APDU → bytes for every service in ``apdu`` (DL/T 698.45-2017 clause 7.2 and annex A).

``encode_apdu`` covers both directions (``decoder.decode_apdu`` is its inverse): the first
byte is the tag (``apdu.Tag``), then the service choice where one exists.  Client-APDUs end
with an optional TimeTag, Server-APDUs with optional FollowReport and TimeTag; LINK and
SECURITY carry neither.
Values that do not fit raise ``Dlt698EncodeError``.
"""

from __future__ import annotations

import struct
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import enc_rcsd, enc_rsd, encode_data
from protocols.dlt698.datetimes import DateTime
from protocols.dlt698.errors import Dlt698EncodeError
from protocols.dlt698.scalars import enc_dts, enc_len, enc_octets, enc_ti

_DT = struct.Struct(">HBBBBBBH")


def _u8(v: int, what: str) -> bytes:
    if not 0 <= v <= 0xFF:
        raise Dlt698EncodeError(f"{what} {v} is not one byte")
    return bytes((v,))


def _pack(fmt: str, *values: int) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error as exc:
        raise Dlt698EncodeError(f"value out of range: {exc}") from None


def _dt(v: DateTime) -> bytes:
    return _DT.pack(v.year, v.month, v.day, v.weekday, v.hour, v.minute, v.second, v.millisecond)


def _time_tag(tag: A.TimeTag | None) -> bytes:
    return b"\x00" if tag is None else b"\x01" + enc_dts(tag.send_time) + enc_ti(tag.delay)


def _result_normal(r: A.ResultNormal) -> bytes:
    if r.data is None:
        return r.oad.wire + b"\x00" + _u8(r.dar, "DAR")
    return r.oad.wire + b"\x01" + encode_data(r.data)


def _result_record(r: A.ResultRecord) -> bytes:
    out = r.oad.wire + enc_rcsd(r.columns)
    if r.rows is None:
        return out + b"\x00" + _u8(r.dar, "DAR")
    parts = [out, b"\x01", enc_len(len(r.rows))]
    for row in r.rows:
        if len(row) != len(r.columns):
            raise Dlt698EncodeError(f"a row has {len(row)} values for {len(r.columns)} columns")
        parts += [encode_data(d) for d in row]
    return b"".join(parts)


def _seq(items: Any, enc: Any) -> bytes:
    return enc_len(len(items)) + b"".join(enc(i) for i in items)


def _is_record(items: Any) -> bool:
    return bool(items) and isinstance(items[0], A.ResultRecord)


def _follow(follow: A.FollowReport, tag: A.TimeTag | None) -> bytes:
    if follow is None:
        out = b"\x00"
    elif _is_record(follow):
        out = b"\x01\x02" + _seq(follow, _result_record)
    else:
        out = b"\x01\x01" + _seq(follow, _result_normal)
    return out + _time_tag(tag)


# ------------------------------------------------------------------ encode


def _fixed_visible(text: str, size: int) -> bytes:
    raw = text.encode("latin-1", "replace")[:size]
    return raw.ljust(size, b"\x00")


def _enc_connect_request(m: A.ConnectRequest) -> bytes:
    if len(m.protocol_conformance) != 8 or len(m.function_conformance) != 16:
        raise Dlt698EncodeError("conformance blocks are 8 and 16 bytes")
    mech = m.mechanism
    out = (
        b"\x02"
        + _u8(m.piid, "PIID")
        + _pack(">H", m.version)
        + m.protocol_conformance
        + m.function_conformance
        + _pack(">HHBHI", m.send_max, m.receive_max, m.window, m.apdu_max, m.timeout)
        + _u8(mech.kind, "connect mechanism")
    )
    if mech.kind == 1:
        out += enc_octets(mech.password.encode("latin-1"))
    elif mech.kind in (2, 3):
        out += enc_octets(mech.cipher) + enc_octets(mech.signature)
    elif mech.kind != 0:
        raise Dlt698EncodeError(f"connect mechanism {mech.kind} is not 0..3")
    return out + _time_tag(m.time_tag)


def _enc_connect_response(m: A.ConnectResponse) -> bytes:
    f = m.factory
    out = b"\x82" + _u8(m.piid, "PIID")
    for text, size in (
        (f.vendor, 4),
        (f.software, 4),
        (f.software_date, 6),
        (f.hardware, 4),
        (f.hardware_date, 6),
        (f.extra, 8),
    ):
        out += _fixed_visible(text, size)
    if len(m.protocol_conformance) != 8 or len(m.function_conformance) != 16:
        raise Dlt698EncodeError("conformance blocks are 8 and 16 bytes")
    out += (
        _pack(">H", m.version)
        + m.protocol_conformance
        + m.function_conformance
        + _pack(">HHBHI", m.send_max, m.receive_max, m.window, m.apdu_max, m.timeout)
        + _u8(m.result, "connect result")
    )
    if m.server_random is None:
        out += b"\x00"
    else:
        out += b"\x01" + enc_octets(m.server_random) + enc_octets(m.server_signature)
    return out + _follow(m.follow_report, m.time_tag)


def encode_apdu(m: A.Apdu) -> bytes:
    """The bytes of one APDU."""
    if isinstance(m, A.GetRequestNormal):
        return b"\x05\x01" + _u8(m.piid, "PIID") + m.oad.wire + _time_tag(m.time_tag)
    if isinstance(m, A.GetResponseNormal):
        out = b"\x85\x01" + _u8(m.piid, "PIID") + _result_normal(m.result)
        return out + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.GetRequestNormalList):
        body = _seq(m.oads, lambda o: o.wire)
        return b"\x05\x02" + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.GetResponseNormalList):
        body = _seq(m.results, _result_normal)
        return b"\x85\x02" + _u8(m.piid, "PIID") + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.GetRequestRecord):
        body = m.oad.wire + enc_rsd(m.rsd) + enc_rcsd(m.columns)
        return b"\x05\x03" + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.GetResponseRecord):
        body = _result_record(m.result)
        return b"\x85\x03" + _u8(m.piid, "PIID") + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.GetRequestNext):
        body = _pack(">H", m.last_block)
        return b"\x05\x05" + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.GetResponseNext):
        out = b"\x85\x05" + _u8(m.piid, "PIID") + (b"\x01" if m.last else b"\x00")
        out += _pack(">H", m.block) + _u8(m.kind, "GetResponseNext choice")
        if m.kind == 0:
            out += _u8(m.dar, "DAR")
        elif m.kind == 1:
            out += _seq(m.results, _result_normal)
        elif m.kind == 2:
            out += _seq(m.results, _result_record)
        else:
            raise Dlt698EncodeError(f"GetResponseNext choice {m.kind} is not 0..2")
        return out + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.SetRequestNormal):
        body = m.oad.wire + encode_data(m.value)
        return b"\x06\x01" + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.SetResponseNormal):
        body = m.oad.wire + _u8(m.dar, "DAR")
        return b"\x86\x01" + _u8(m.piid, "PIID") + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.ActionRequestNormal):
        body = m.omd.wire + encode_data(m.parameter)
        return b"\x07\x01" + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.ActionResponseNormal):
        body = m.omd.wire + _u8(m.dar, "DAR")
        body += b"\x00" if m.data is None else b"\x01" + encode_data(m.data)
        return b"\x87\x01" + _u8(m.piid, "PIID") + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.ReportNotification):
        choice, enc = (b"\x02", _result_record) if m.records else (b"\x01", _result_normal)
        body = _seq(m.results, enc)
        return b"\x88" + choice + _u8(m.piid, "PIID") + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.ReportResponse):
        choice = b"\x02" if m.records else b"\x01"
        body = _seq(m.oads, lambda o: o.wire)
        return b"\x08" + choice + _u8(m.piid, "PIID") + body + _time_tag(m.time_tag)
    if isinstance(m, A.ConnectRequest):
        return _enc_connect_request(m)
    if isinstance(m, A.ConnectResponse):
        return _enc_connect_response(m)
    if isinstance(m, A.ReleaseRequest):
        return b"\x03" + _u8(m.piid, "PIID") + _time_tag(m.time_tag)
    if isinstance(m, A.ReleaseResponse):
        body = _u8(m.piid, "PIID") + _u8(m.result, "result")
        return b"\x83" + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.ReleaseNotification):
        body = _u8(m.piid, "PIID") + enc_dts(m.established) + enc_dts(m.now)
        return b"\x84" + body + _follow(m.follow_report, m.time_tag)
    if isinstance(m, A.LinkRequest):
        body = _u8(m.piid, "PIID") + _u8(int(m.kind), "link type") + _pack(">H", m.heartbeat)
        return b"\x01" + body + _dt(m.time)
    if isinstance(m, A.LinkResponse):
        body = _u8(m.piid, "PIID") + _u8(m.result, "link result")
        return b"\x81" + body + _dt(m.request_time) + _dt(m.receive_time) + _dt(m.response_time)
    if isinstance(m, A.SecurityRequest):
        return _enc_security_request(m)
    if isinstance(m, A.SecurityResponse):
        if m.dar is not None:
            out = b"\x90\x02" + _u8(m.dar, "DAR")
        else:
            out = b"\x90" + (b"\x01" if m.encrypted else b"\x00") + enc_octets(m.apdu)
        if m.mac is None:
            return out + b"\x00"
        return out + b"\x01\x00" + enc_octets(m.mac)
    if isinstance(m, A.ErrorResponse):
        # inside Server-APDU, so FollowReport and TimeTag flags follow (as the PyPI peer reads it)
        return b"\xee" + _u8(m.piid, "PIID") + _u8(m.error, "error") + b"\x00\x00"
    raise Dlt698EncodeError(f"{m!r} is not an APDU")


def _enc_security_request(m: A.SecurityRequest) -> bytes:
    out = b"\x10" + (b"\x01" if m.encrypted else b"\x00") + enc_octets(m.apdu)
    v = A.Verification(m.verification)
    out += bytes((v,))
    sid = _pack(">I", m.sid) + enc_octets(m.sid_extra)
    if v is A.Verification.SID_MAC:
        return out + sid + enc_octets(m.mac)
    if v is A.Verification.RN:
        return out + enc_octets(m.rn)
    if v is A.Verification.RN_MAC:
        return out + enc_octets(m.rn) + enc_octets(m.mac)
    return out + sid
