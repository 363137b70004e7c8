"""GET, SET, ACTION and REPORT APDUs, the SECURITY wrapping and ERROR-Response: bytes → typed."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data, dec_data, dec_rcsd, dec_rsd
from protocols.dlt698.decoder.parts import (
    Decoded,
    dec_follow,
    dec_oads,
    dec_result_normal,
    dec_result_record,
    dec_seq,
    dec_time_tag,
)
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.scalars import dec_oad, dec_octets, dec_omd


def dec_get_request(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    pos += 2
    m: A.Apdu
    if choice == 1:
        oad, pos = dec_oad(buf, pos)
        tag, pos = dec_time_tag(buf, pos)
        m = A.GetRequestNormal(piid, oad, tag)
    elif choice == 2:
        oads, pos = dec_oads(buf, pos)
        tag, pos = dec_time_tag(buf, pos)
        m = A.GetRequestNormalList(piid, oads, tag)
    elif choice == 3:
        oad, pos = dec_oad(buf, pos)
        rsd, pos = dec_rsd(buf, pos)
        columns, pos = dec_rcsd(buf, pos)
        tag, pos = dec_time_tag(buf, pos)
        m = A.GetRequestRecord(piid, oad, rsd, columns, tag)
    elif choice == 5:
        block = (buf[pos] << 8) | buf[pos + 1]
        tag, pos = dec_time_tag(buf, pos + 2)
        m = A.GetRequestNext(piid, block, tag)
    else:
        raise Dlt698Error(f"GET-Request choice {choice} is not supported (1, 2, 3 or 5)")
    return m, pos


def dec_get_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    pos += 2
    m: A.Apdu
    if choice == 1:
        result, pos = dec_result_normal(buf, pos)
        follow, tag, pos = dec_follow(buf, pos)
        m = A.GetResponseNormal(piid, result, follow, tag)
    elif choice == 2:
        results, pos = dec_seq(buf, pos, dec_result_normal)
        follow, tag, pos = dec_follow(buf, pos)
        m = A.GetResponseNormalList(piid, results, follow, tag)
    elif choice == 3:
        record, pos = dec_result_record(buf, pos)
        follow, tag, pos = dec_follow(buf, pos)
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
            results, pos = dec_seq(buf, pos, dec_result_normal)
        elif kind == 2:
            results, pos = dec_seq(buf, pos, dec_result_record)
        else:
            raise Dlt698Error(f"GetResponseNext choice {kind} is not 0..2")
        follow, tag, pos = dec_follow(buf, pos)
        m = A.GetResponseNext(piid, bool(last), block, kind, results, dar, follow, tag)
    else:
        raise Dlt698Error(f"GET-Response choice {choice} is not supported (1, 2, 3 or 5)")
    return m, pos


def _normal_request(
    buf: bytes,
    pos: int,
    service: str,
    dec_target: Callable[[bytes, int], tuple[Any, int]],
    make: Callable[[int, Any, Data, A.TimeTag | None], A.Apdu],
) -> Decoded:
    """SET- and ACTION-Request Normal: PIID, target (OAD / OMD), Data, time tag."""
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"{service} choice {choice} is not supported (1)")
    target, pos = dec_target(buf, pos + 2)
    value, pos = dec_data(buf, pos)
    tag, pos = dec_time_tag(buf, pos)
    return make(piid, target, value, tag), pos


def dec_set_request(buf: bytes, pos: int) -> Decoded:
    return _normal_request(buf, pos, "SET-Request", dec_oad, A.SetRequestNormal)


def dec_set_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice != 1:
        raise Dlt698Error(f"SET-Response choice {choice} is not supported (1)")
    oad, pos = dec_oad(buf, pos + 2)
    dar = buf[pos]
    follow, tag, pos = dec_follow(buf, pos + 1)
    return A.SetResponseNormal(piid, oad, dar, follow, tag), pos


def dec_action_request(buf: bytes, pos: int) -> Decoded:
    return _normal_request(buf, pos, "ACTION-Request", dec_omd, A.ActionRequestNormal)


def dec_action_response(buf: bytes, pos: int) -> Decoded:
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
    follow, tag, pos = dec_follow(buf, pos)
    return A.ActionResponseNormal(piid, omd, dar, data, follow, tag), pos


def dec_report(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice not in (1, 2):
        raise Dlt698Error(f"REPORT-Notification choice {choice} is not supported (1 or 2)")
    dec = dec_result_record if choice == 2 else dec_result_normal
    results, pos = dec_seq(buf, pos + 2, dec)
    follow, tag, pos = dec_follow(buf, pos)
    return A.ReportNotification(piid, results, choice == 2, follow, tag), pos


def dec_report_response(buf: bytes, pos: int) -> Decoded:
    choice, piid = buf[pos], buf[pos + 1]
    if choice not in (1, 2):
        raise Dlt698Error(f"REPORT-Response choice {choice} is not supported (1 or 2)")
    oads, pos = dec_oads(buf, pos + 2)
    tag, pos = dec_time_tag(buf, pos)
    return A.ReportResponse(piid, oads, choice == 2, tag), pos


def dec_security_request(buf: bytes, pos: int) -> Decoded:
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


def dec_security_response(buf: bytes, pos: int) -> Decoded:
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


def dec_error_response(buf: bytes, pos: int) -> Decoded:
    m = A.ErrorResponse(buf[pos], buf[pos + 1])
    if pos + 2 == len(buf):  # some servers send no FollowReport/TimeTag flags after the error
        return m, pos + 2
    _, _, end = dec_follow(buf, pos + 2)
    return m, end
