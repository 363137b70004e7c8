"""Pieces several DL/T 698.45 APDUs share: time tags, results, FollowReport, sequences."""

from __future__ import annotations

import struct
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import dec_data, dec_rcsd
from protocols.dlt698.datetimes import DateTime
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.scalars import dec_dts, dec_len, dec_oad, dec_ti

_DT = struct.Struct(">HBBBBBBH")
Decoded = tuple[A.Apdu, int]


def dec_dt(buf: bytes, pos: int) -> tuple[DateTime, int]:
    return DateTime(*_DT.unpack_from(buf, pos)), pos + 10


def dec_time_tag(buf: bytes, pos: int) -> tuple[A.TimeTag | None, int]:
    flag = buf[pos]
    if flag == 0:
        return None, pos + 1
    if flag != 1:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (time tag)")
    when, pos = dec_dts(buf, pos + 1)
    delay, pos = dec_ti(buf, pos)
    return A.TimeTag(when, delay), pos


def dec_result_normal(buf: bytes, pos: int) -> tuple[A.ResultNormal, int]:
    oad, pos = dec_oad(buf, pos)
    choice = buf[pos]
    if choice == 0:
        return A.ResultNormal(oad, None, buf[pos + 1]), pos + 2
    if choice != 1:
        raise Dlt698Error(f"Get-Result choice {choice} is not 0 (DAR) or 1 (Data)")
    data, pos = dec_data(buf, pos + 1)
    return A.ResultNormal(oad, data), pos


def dec_result_record(buf: bytes, pos: int) -> tuple[A.ResultRecord, int]:
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


def dec_seq(buf: bytes, pos: int, dec: Any) -> tuple[tuple[Any, ...], int]:
    n, pos = dec_len(buf, pos)
    if n > len(buf) - pos:
        raise Dlt698Error(f"{n} items announced, {len(buf) - pos} bytes left")
    out = []
    for _ in range(n):
        item, pos = dec(buf, pos)
        out.append(item)
    return tuple(out), pos


def dec_follow(buf: bytes, pos: int) -> tuple[A.FollowReport, A.TimeTag | None, int]:
    flag = buf[pos]
    follow: A.FollowReport = None
    if flag == 1:
        choice = buf[pos + 1]
        if choice == 1:
            follow, pos = dec_seq(buf, pos + 2, dec_result_normal)
        elif choice == 2:
            follow, pos = dec_seq(buf, pos + 2, dec_result_record)
        else:
            raise Dlt698Error(f"FollowReport choice {choice} is not 1 or 2")
    elif flag == 0:
        pos += 1
    else:
        raise Dlt698Error(f"OPTIONAL flag {flag} is not 0 or 1 (follow report)")
    tag, pos = dec_time_tag(buf, pos)
    return follow, tag, pos


def dec_oads(buf: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
    return dec_seq(buf, pos, dec_oad)
