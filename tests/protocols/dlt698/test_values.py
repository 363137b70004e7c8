"""The objects table: Data ⇄ canonical values, readings and events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from protocols import quantities
from protocols.dlt698 import (
    OAD,
    OBJECTS,
    Data,
    DataType,
    DateTimeS,
    Dlt698EncodeError,
    Dlt698ValueError,
    ResultNormal,
    ResultRecord,
    decode_value,
    encode_value,
    frozen_to_readings,
    records_to_events,
    result_to_readings,
)
from protocols.dlt698.values import status_words
from protocols.model import EventType, ReadingKind

T = DataType
NOW = datetime(2026, 12, 6, 2, 0, tzinfo=ZoneInfo("UTC"))


def dlu(*values: int) -> Data:
    return Data(T.ARRAY, tuple(Data(T.DOUBLE_LONG_UNSIGNED, v) for v in values))


def test_every_mapped_key_is_canonical_or_internal() -> None:
    for row in OBJECTS.values():
        keys = [row.key_of(i + 1) for i in range(len(row.keys))] or [row.prefix]
        for key in keys:
            internal = key.split(".")[0] in ("freeze", "event", "daily_frozen", "events", "status")
            assert quantities.is_known(key) or internal or ".q" in key or "export" in key, key


def test_energy_array_and_element() -> None:
    values = decode_value(OAD(0x0010, 2), dlu(123456, 1, 2, 3, 4))
    assert values["energy.active.import.total"] == Decimal("1234.56")
    assert values["energy.active.import.t4"] == Decimal("0.04")
    element = decode_value(OAD(0x0010, 2, 2), Data(T.DOUBLE_LONG_UNSIGNED, 7))
    assert element == {"energy.active.import.t1": Decimal("0.07")}


def test_power_is_converted_to_kw_and_signed() -> None:
    power = Data(T.ARRAY, tuple(Data(T.DOUBLE_LONG, v) for v in (-12345, 1, 2, 3)))
    values = decode_value(OAD(0x2004, 2), power)
    assert values["power.active.total"] == Decimal("-1.2345")
    assert encode_value(OAD(0x2004, 2), values) == power


def test_frequency_clock_address() -> None:
    assert decode_value(OAD(0x200F, 2), Data(T.LONG_UNSIGNED, 5001)) == {
        "frequency": Decimal("50.01")
    }
    clock = decode_value(OAD(0x4000, 2), Data(T.DATE_TIME_S, DateTimeS(2026, 12, 6, 10, 0, 1)))
    assert clock == {"meter.clock": datetime(2026, 12, 6, 10, 0, 1)}
    assert decode_value(OAD(0x4000, 2), Data(T.DATE_TIME_S, DateTimeS(0, 0, 0))) == {}
    address = decode_value(OAD(0x4001, 2), Data(T.OCTET_STRING, bytes.fromhex("000039200933")))
    assert address == {"meter.address": "000039200933"}


def test_type_mismatch_is_a_value_error() -> None:
    with pytest.raises(Dlt698ValueError):
        decode_value(OAD(0x2000, 2), Data(T.VISIBLE_STRING, "220V"))
    with pytest.raises(Dlt698ValueError):
        decode_value(OAD(0x0010, 2), Data(T.DOUBLE_LONG_UNSIGNED, 1))
    assert decode_value(OAD(0x9999, 2), Data(T.NULL)) == {}


def test_encode_energy_truncates_and_rolls_over() -> None:
    values = {f"energy.active.import.{k}": 1.239 for k in ("total", "t1", "t2", "t3", "t4")}
    assert encode_value(OAD(0x0010, 2), values).value[0].value == 123
    values["energy.active.import.total"] = 42949672.96 + 1.0
    assert encode_value(OAD(0x0010, 2), values).value[0].value == 100
    with pytest.raises(Dlt698EncodeError):
        encode_value(OAD(0x5004, 2), values)


def test_status_word_three_gives_the_relay() -> None:
    words = status_words((0, 0, 1 << 4, 0, 0, 0, 0))
    values = decode_value(OAD(0x2014, 2), words)
    assert values["relay.state"] == "open" and values["status.word3"] == 16
    assert decode_value(OAD(0x2014, 2), status_words((0,) * 7))["relay.state"] == "closed"


def test_result_to_readings() -> None:
    readings = result_to_readings(
        "000000000001", ResultNormal(OAD(0x0010, 2), dlu(100, 25, 25, 25, 25)), NOW
    )
    assert {r.quantity for r in readings} == {
        f"energy.active.import.{k}" for k in ("total", "t1", "t2", "t3", "t4")
    }
    assert result_to_readings("1", ResultNormal(OAD(0x0010, 2), None, 6), NOW) == []


def test_daily_frozen_rows_become_readings_keyed_by_freeze_time() -> None:
    columns = (OAD(0x2021, 2), OAD(0x0010, 2))
    rows = (
        (Data(T.DATE_TIME_S, DateTimeS(2026, 12, 5)), dlu(100, 25, 25, 25, 25)),
        (Data(T.DATE_TIME_S, DateTimeS(0xFFFF, 0xFF, 0xFF)), dlu(1, 1, 1, 1, 1)),
        (Data(T.DATE_TIME_S, DateTimeS(2026, 12, 6)), dlu(200, 50, 50, 50, 50)),
    )
    readings = frozen_to_readings("000000000001", ResultRecord(OAD(0x5004, 2), columns, rows), NOW)
    assert len(readings) == 10 and all(r.kind is ReadingKind.DAILY_FROZEN for r in readings)
    totals = {
        r.freeze_time: r.value for r in readings if r.quantity == "energy.active.import.total"
    }
    shanghai = ZoneInfo("Asia/Shanghai")
    assert totals == {
        datetime(2026, 12, 5, tzinfo=shanghai): Decimal("1.00"),
        datetime(2026, 12, 6, tzinfo=shanghai): Decimal("2.00"),
    }


def test_event_records_become_events() -> None:
    columns = (OAD(0x2022, 2), OAD(0x201E, 2), OAD(0x2020, 2), OAD(0x0010, 2, 0, 1))
    rows = (
        (
            Data(T.DOUBLE_LONG_UNSIGNED, 3),
            Data(T.DATE_TIME_S, DateTimeS(2026, 12, 5, 8)),
            Data(T.NULL),
            dlu(100, 25, 25, 25, 25),
        ),
    )
    events = records_to_events("000000000001", ResultRecord(OAD(0x301B, 2), columns, rows))
    assert len(events) == 1
    event = events[0]
    assert event.type is EventType.METER_COVER_OPEN and event.end is None
    assert event.start == datetime(2026, 12, 5, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert event.details["record_no"] == 3
    assert event.details["energy.active.import.total@1"] == "1.00"
    assert records_to_events("1", ResultRecord(OAD(0x5004, 2), columns, rows)) == []
