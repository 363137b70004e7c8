"""LINK, CONNECT and RELEASE APDUs (``protocols.dlt698.association``): bytes → typed."""

from __future__ import annotations

import struct

from protocols.dlt698 import apdu as A
from protocols.dlt698.decoder.parts import (
    Decoded,
    dec_dt,
    dec_follow,
    dec_time_tag,
)
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.scalars import dec_dts, dec_octets, take

_LIMITS = struct.Struct(">HHBHI")


def dec_connect_request(buf: bytes, pos: int) -> Decoded:
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
    tag, pos = dec_time_tag(buf, pos)
    m = A.ConnectRequest(
        piid, version, proto, func, send, receive, window, apdu_max, timeout, mech, tag
    )
    return m, pos


def dec_connect_response(buf: bytes, pos: int) -> Decoded:
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
    follow, tag, pos = dec_follow(buf, pos)
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


def dec_release_request(buf: bytes, pos: int) -> Decoded:
    tag, end = dec_time_tag(buf, pos + 1)
    return A.ReleaseRequest(buf[pos], tag), end


def dec_release_response(buf: bytes, pos: int) -> Decoded:
    follow, tag, end = dec_follow(buf, pos + 2)
    return A.ReleaseResponse(buf[pos], buf[pos + 1], follow, tag), end


def dec_release_notification(buf: bytes, pos: int) -> Decoded:
    established, p = dec_dts(buf, pos + 1)
    now, p = dec_dts(buf, p)
    follow, tag, p = dec_follow(buf, p)
    return A.ReleaseNotification(buf[pos], established, now, follow, tag), p


def dec_link_request(buf: bytes, pos: int) -> Decoded:
    piid, kind = buf[pos], buf[pos + 1]
    if kind > 2:
        raise Dlt698Error(f"LINK request type {kind} is not 0..2")
    beat = (buf[pos + 2] << 8) | buf[pos + 3]
    when, end = dec_dt(buf, pos + 4)
    return A.LinkRequest(piid, A.LinkType(kind), beat, when), end


def dec_link_response(buf: bytes, pos: int) -> Decoded:
    piid, result = buf[pos], buf[pos + 1]
    t1, p = dec_dt(buf, pos + 2)
    t2, p = dec_dt(buf, p)
    t3, p = dec_dt(buf, p)
    return A.LinkResponse(piid, result, t1, t2, t3), p
