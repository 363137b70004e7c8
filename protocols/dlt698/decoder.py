"""bytes → APDU: the inverse of ``encoder.encode_apdu`` (DL/T 698.45-2017 clause 7.2).

``decode_apdu`` reads one whole APDU and rejects trailing bytes; every malformed input
(unknown tag or choice, truncation, bad OPTIONAL flag, impossible counts) raises
``Dlt698Error`` — the only exception it lets out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import dec_data, dec_rcsd, dec_rsd
from protocols.dlt698.datetimes import DateTime
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.scalars import dec_dts, dec_len, dec_oad, dec_octets, dec_omd, dec_ti, take

_DT = struct.Struct(">HBBBBBBH")
Decoded = tuple[A.Apdu, int]


def _dec_dt(buf: bytes, pos: int) -> tuple[DateTime, int]:
    return DateTime(*_DT.unpack_from(buf, pos)), pos + 10


def _dec_time_tag(buf: bytes, pos: int) -> tuple[A.TimeTag | None, int]:
    flag = buf[pos]
    if flag == 0:
        return None, pos + 1
    if flag != 1:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (time tag)")
    when, pos = dec_dts(buf, pos + 1)
    delay, pos = dec_ti(buf, pos)
    return A.TimeTag(when, delay), pos


def _dec_result_normal(buf: bytes, pos: int) -> tuple[A.ResultNormal, int]:
    oad, pos = dec_oad(buf, pos)
    choice = buf[pos]
    if choice == 0:
        return A.ResultNormal(oad, None, buf[pos + 1]), pos + 2
    if choice != 1:
        raise Dlt698Error(f"Get-Result choice {choice} is not 0 (DAR) or 1 (Data)")
    data, pos = dec_data(buf, pos + 1)
    return A.ResultNormal(oad, data), pos


def _dec_result_record(buf: bytes, pos: int) -> tuple[A.ResultRecord, int]:
    oad, pos = dec_oad(buf, pos)
    columns, pos = dec_rcsd(buf, pos)
    choice = buf[pos]
    if choice == 0:
        return A.ResultRecord(oad, columns, None, buf[pos + 1]), pos + 2
    if choice != 1:
        raise Dlt698Error(f"record result choice {choice} is not 0 (DAR) or 1 (rows)")
    n, pos = dec_len(buf, pos + 1)
    if n and not columns:
        raise Dlt698Error("records without columns")
    if n * len(columns) > len(buf) - pos:
        raise Dlt698Error(f"{n} rows announced, {len(buf) - pos} bytes left")
    rows = []
    for _ in range(n):
        row = []
        for _ in columns:
            d, pos = dec_data(buf, pos)
            row.append(d)
        rows.append(tuple(row))
    return A.ResultRecord(oad, columns, tuple(rows)), pos


def _dec_seq(buf: bytes, pos: int, dec: Any) -> tuple[tuple[Any, ...], int]:
    n, pos = dec_len(buf, pos)
    if n > len(buf) - pos:
        raise Dlt698Error(f"{n} items announced, {len(buf) - pos} bytes left")
    out = []
    for _ in range(n):
        item, pos = dec(buf, pos)
        out.append(item)
    return tuple(out), pos


def _dec_follow(buf: bytes, pos: int) -> tuple[A.FollowReport, A.TimeTag | None, int]:
    flag = buf[pos]
    follow: A.FollowReport = None
    if flag == 1:
        choice = buf[pos + 1]
        if choice == 1:
            follow, pos = _dec_seq(buf, pos + 2, _dec_result_normal)
        elif choice == 2:
            follow, pos = _dec_seq(buf, pos + 2, _dec_result_record)
        else:
            raise Dlt698Error(f"FollowReport choice {choice} is not 1 or 2")
    elif flag == 0:
        pos += 1
    else:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (follow report)")
    tag, pos = _dec_time_tag(buf, pos)
    return follow, tag, pos


def _oads(buf: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
    return _dec_seq(buf, pos, dec_oad)


def _get_request(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    pos += 2
    m: A.Apdu
    if choice == 1:
        oad, pos = dec_oad(buf, pos)
        tag, pos = _dec_time_tag(buf, pos)
        m = A.GetRequestNormal(piid, oad, tag)
    elif choice == 2:
        oads, pos = _oads(buf, pos)
        tag, pos = _dec_time_tag(buf, pos)
        m = A.GetRequestNormalList(piid, oads, tag)
    elif choice == 3:
        oad, pos = dec_oad(buf, pos)
        rsd, pos = dec_rsd(buf, pos)
        columns, pos = dec_rcsd(buf, pos)
        tag, pos = _dec_time_tag(buf, pos)
        m = A.GetRequestRecord(piid, oad, rsd, columns, tag)
    elif choice == 5:
        block = (buf[pos] << 8) | buf[pos + 1]
        tag, pos = _dec_time_tag(buf, pos + 2)
        m = A.GetRequestNext(piid, block, tag)
    else:
        raise Dlt698Error(f"GET-Request choice {choice} is not supported (1, 2, 3 or 5)")
    return m, pos


def _get_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    pos += 2
    m: A.Apdu
    if choice == 1:
        result, pos = _dec_result_normal(buf, pos)
        follow, tag, pos = _dec_follow(buf, pos)
        m = A.GetResponseNormal(piid, result, follow, tag)
    elif choice == 2:
        results, pos = _dec_seq(buf, pos, _dec_result_normal)
        follow, tag, pos = _dec_follow(buf, pos)
        m = A.GetResponseNormalList(piid, results, follow, tag)
    elif choice == 3:
        record, pos = _dec_result_record(buf, pos)
        follow, tag, pos = _dec_follow(buf, pos)
        m = A.GetResponseRecord(piid, record, follow, tag)
    elif choice == 5:
        last = buf[pos]
        if last > 1:
            raise Dlt698Error(f"last-block flag {last} is not a boolean")
        block, kind = (buf[pos + 1] << 8) | buf[pos + 2], buf[pos + 3]
        pos += 4
        dar, results = 0, ()
        if kind == 0:
            dar, pos = buf[pos], pos + 1
        elif kind == 1:
            results, pos = _dec_seq(buf, pos, _dec_result_normal)
        elif kind == 2:
            results, pos = _dec_seq(buf, pos, _dec_result_record)
        else:
            raise Dlt698Error(f"GetResponseNext choice {kind} is not 0..2")
        follow, tag, pos = _dec_follow(buf, pos)
        m = A.GetResponseNext(piid, bool(last), block, kind, results, dar, follow, tag)
    else:
        raise Dlt698Error(f"GET-Response choice {choice} is not supported (1, 2, 3 or 5)")
    return m, pos


def _set_request(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"SET-Request choice {choice} is not supported (1)")
    oad, pos = dec_oad(buf, pos + 2)
    value, pos = dec_data(buf, pos)
    tag, pos = _dec_time_tag(buf, pos)
    return A.SetRequestNormal(piid, oad, value, tag), pos


def _set_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"SET-Response choice {choice} is not supported (1)")
    oad, pos = dec_oad(buf, pos + 2)
    dar = buf[pos]
    follow, tag, pos = _dec_follow(buf, pos + 1)
    return A.SetResponseNormal(piid, oad, dar, follow, tag), pos


def _action_request(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"ACTION-Request choice {choice} is not supported (1)")
    omd, pos = dec_omd(buf, pos + 2)
    parameter, pos = dec_data(buf, pos)
    tag, pos = _dec_time_tag(buf, pos)
    return A.ActionRequestNormal(piid, omd, parameter, tag), pos


def _action_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"ACTION-Response choice {choice} is not supported (1)")
    omd, pos = dec_omd(buf, pos + 2)
    dar, flag = buf[pos], buf[pos + 1]
    data = None
    if flag == 1:
        data, pos = dec_data(buf, pos + 2)
    elif flag == 0:
        pos += 2
    else:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (action data)")
    follow, tag, pos = _dec_follow(buf, pos)
    return A.ActionResponseNormal(piid, omd, dar, data, follow, tag), pos


def _report(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice not in (1, 2):
        raise Dlt698Error(f"REPORT-Notification choice {choice} is not supported (1 or 2)")
    dec = _dec_result_record if choice == 2 else _dec_result_normal
    results, pos = _dec_seq(buf, pos + 2, dec)
    follow, tag, pos = _dec_follow(buf, pos)
    return A.ReportNotification(piid, results, choice == 2, follow, tag), pos


def _report_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice not in (1, 2):
        raise Dlt698Error(f"REPORT-Response choice {choice} is not supported (1 or 2)")
    oads, pos = _oads(buf, pos + 2)
    tag, pos = _dec_time_tag(buf, pos)
    return A.ReportResponse(piid, oads, choice == 2, tag), pos


_LIMITS = struct.Struct(">HHBHI")


def _connect_request(buf: bytes, pos: int) -> Decoded:
    piid = buf[pos]
    version = (buf[pos + 1] << 8) | buf[pos + 2]
    proto, pos = take(buf, pos + 3, 8)
    func, pos = take(buf, pos, 16)
    send, receive, window, apdu_max, timeout = _LIMITS.unpack_from(buf, pos)
    pos += _LIMITS.size
    kind = buf[pos]
    pos += 1
    mech = A.ConnectMechanism(kind)
    if kind == 1:
        password, pos = dec_octets(buf, pos)
        mech = A.ConnectMechanism(1, password=password.decode("latin-1"))
    elif kind in (2, 3):
        cipher, pos = dec_octets(buf, pos)
        signature, pos = dec_octets(buf, pos)
        mech = A.ConnectMechanism(kind, cipher=cipher, signature=signature)
    elif kind != 0:
        raise Dlt698Error(f"connect mechanism {kind} is not 0..3")
    tag, pos = _dec_time_tag(buf, pos)
    m = A.ConnectRequest(
        piid, version, proto, func, send, receive, window, apdu_max, timeout, mech, tag
    )
    return m, pos


def _connect_response(buf: bytes, pos: int) -> Decoded:
    piid = buf[pos]
    pos += 1
    fields = []
    for size in (4, 4, 6, 4, 6, 8):
        raw, pos = take(buf, pos, size)
        fields.append(raw.decode("latin-1").rstrip("\x00"))
    version = (buf[pos] << 8) | buf[pos + 1]
    proto, pos = take(buf, pos + 2, 8)
    func, pos = take(buf, pos, 16)
    send, receive, window, apdu_max, timeout = _LIMITS.unpack_from(buf, pos)
    pos += _LIMITS.size
    result, flag = buf[pos], buf[pos + 1]
    pos += 2
    random: bytes | None = None
    signature = b""
    if flag == 1:
        random, pos = dec_octets(buf, pos)
        signature, pos = dec_octets(buf, pos)
    elif flag != 0:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (security data)")
    follow, tag, pos = _dec_follow(buf, pos)
    factory = A.FactoryVersion(*fields)
    m = A.ConnectResponse(
        piid,
        factory,
        version,
        proto,
        func,
        send,
        receive,
        window,
        apdu_max,
        timeout,
        result,
        random,
        signature,
        follow,
        tag,
    )
    return m, pos


def _release_request(buf: bytes, pos: int) -> Decoded:
    tag, end = _dec_time_tag(buf, pos + 1)
    return A.ReleaseRequest(buf[pos], tag), end


def _release_response(buf: bytes, pos: int) -> Decoded:
    follow, tag, end = _dec_follow(buf, pos + 2)
    return A.ReleaseResponse(buf[pos], buf[pos + 1], follow, tag), end


def _release_notification(buf: bytes, pos: int) -> Decoded:
    established, p = dec_dts(buf, pos + 1)
    now, p = dec_dts(buf, p)
    follow, tag, p = _dec_follow(buf, p)
    return A.ReleaseNotification(buf[pos], established, now, follow, tag), p


def _link_request(buf: bytes, pos: int) -> Decoded:
    piid, kind = buf[pos], buf[pos + 1]
    if kind > 2:
        raise Dlt698Error(f"LINK request type {kind} is not 0..2")
    beat = (buf[pos + 2] << 8) | buf[pos + 3]
    when, end = _dec_dt(buf, pos + 4)
    return A.LinkRequest(piid, A.LinkType(kind), beat, when), end


def _link_response(buf: bytes, pos: int) -> Decoded:
    piid, result = buf[pos], buf[pos + 1]
    t1, p = _dec_dt(buf, pos + 2)
    t2, p = _dec_dt(buf, p)
    t3, p = _dec_dt(buf, p)
    return A.LinkResponse(piid, result, t1, t2, t3), p


def _security_request(buf: bytes, pos: int) -> Decoded:
    choice = buf[pos]
    if choice > 1:
        raise Dlt698Error(f"SECURITY-Request data choice {choice} is not 0 or 1")
    payload, pos = dec_octets(buf, pos + 1)
    kind = buf[pos]
    pos += 1
    rn = mac = extra = b""
    sid = 0
    if kind in (0, 3):
        sid = struct.unpack_from(">I", buf, pos)[0]
        extra, pos = dec_octets(buf, pos + 4)
        if kind == 0:
            mac, pos = dec_octets(buf, pos)
    elif kind in (1, 2):
        rn, pos = dec_octets(buf, pos)
        if kind == 2:
            mac, pos = dec_octets(buf, pos)
    else:
        raise Dlt698Error(f"SECURITY-Request verification {kind} is not 0..3")
    m = A.SecurityRequest(payload, A.Verification(kind), rn, mac, sid, extra, choice == 1)
    return m, pos


def _security_response(buf: bytes, pos: int) -> Decoded:
    choice = buf[pos]
    payload, dar = b"", None
    if choice in (0, 1):
        payload, pos = dec_octets(buf, pos + 1)
    elif choice == 2:
        dar, pos = buf[pos + 1], pos + 2
    else:
        raise Dlt698Error(f"SECURITY-Response data choice {choice} is not 0..2")
    flag = buf[pos]
    mac = None
    if flag == 1:
        if buf[pos + 1] != 0:
            raise Dlt698Error(f"SECURITY-Response verification choice {buf[pos + 1]} is not 0")
        mac, pos = dec_octets(buf, pos + 2)
    elif flag == 0:
        pos += 1
    else:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (MAC)")
    return A.SecurityResponse(payload, mac, choice == 1, dar), pos


def _error_response(buf: bytes, pos: int) -> Decoded:
    m = A.ErrorResponse(buf[pos], buf[pos + 1])
    if pos + 2 == len(buf):  # some servers send no FollowReport/TimeTag flags after the error
        return m, pos + 2
    _, _, end = _dec_follow(buf, pos + 2)
    return m, end


_DECODERS: dict[int, Callable[[bytes, int], Decoded]] = {
    A.Tag.GET_REQUEST: _get_request,
    A.Tag.GET_RESPONSE: _get_response,
    A.Tag.SET_REQUEST: _set_request,
    A.Tag.SET_RESPONSE: _set_response,
    A.Tag.ACTION_REQUEST: _action_request,
    A.Tag.ACTION_RESPONSE: _action_response,
    A.Tag.REPORT_NOTIFICATION: _report,
    A.Tag.REPORT_RESPONSE: _report_response,
    A.Tag.CONNECT_REQUEST: _connect_request,
    A.Tag.CONNECT_RESPONSE: _connect_response,
    A.Tag.RELEASE_REQUEST: _release_request,
    A.Tag.RELEASE_RESPONSE: _release_response,
    A.Tag.RELEASE_NOTIFICATION: _release_notification,
    A.Tag.LINK_REQUEST: _link_request,
    A.Tag.LINK_RESPONSE: _link_response,
    A.Tag.SECURITY_REQUEST: _security_request,
    A.Tag.SECURITY_RESPONSE: _security_response,
    A.Tag.ERROR_RESPONSE: _error_response,
}


def decode_apdu(raw: bytes) -> A.Apdu:
    """One whole APDU; ``Dlt698Error`` if malformed, truncated or followed by extra bytes."""
    if not raw:
        raise Dlt698Error("empty APDU")
    dec = _DECODERS.get(raw[0])
    if dec is None:
        raise Dlt698Error(f"APDU tag {raw[0]} is not supported")
    try:
        m, pos = dec(raw, 1)
    except (IndexError, struct.error):
        raise Dlt698Error(f"APDU truncated ({len(raw)} bytes)") from None
    if pos != len(raw):
        raise Dlt698Error(f"{len(raw) - pos} bytes after the APDU")
    return m
