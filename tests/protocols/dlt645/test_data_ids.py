"""The identifier table: meanings, layouts, patterns, typed values, readings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from protocols import quantities
from protocols.dlt645 import (
    DATA_IDS,
    Dlt645EncodeError,
    Dlt645Error,
    EventRecord,
    ReadReply,
    StatusWord,
    UnknownDataId,
    Version,
    data_id,
    decode_value,
    decode_values,
    encode_value,
    reply_to_events,
    reply_to_readings,
)
from protocols.model import EventType, MeterTime, ReadingKind


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_every_quantity_named_by_the_table_is_canonical():
    for table in DATA_IDS.values():
        for row in table.values():
            named = [row.quantity] + [m.quantity for m in row.members]
            assert all(q is None or quantities.is_known(q) for q in named), row.hex


@pytest.mark.parametrize(
    ("di", "quantity", "unit", "length"),
    [
        (0x00000000, "energy.active.combined.total", "kWh", 4),
        (0x00010300, "energy.active.import.t3", "kWh", 4),
        (0x00020000, "energy.active.export.total", "kWh", 4),
        (0x00030000, "energy.reactive.combined1.total", "kvarh", 4),
        (0x02010200, "voltage.b", "V", 2),
        (0x02020300, "current.c", "A", 3),
        (0x02030000, "power.active.total", "kW", 3),
        (0x02040000, "power.reactive.total", "kvar", 3),
        (0x02050000, "power.apparent.total", "kVA", 3),
        (0x02060000, "power_factor.total", "", 2),
        (0x02800002, "frequency", "Hz", 2),
        (0x04000401, "meter.address", "", 6),
        (0x04000402, "meter.number", "", 6),
        (0x04000503, "status.word3", "", 2),
        (0x03300D00, "events.meter_cover.count", "", 3),
        (0x03110000, "events.power_down.count", "", 3),
        (0x00900200, "prepay.balance.money", "CNY", 4),
        (0x00900201, "prepay.overdraft.money", "CNY", 4),
        (0x00900100, "prepay.balance.energy", "kWh", 4),
    ],
)
def test_rows(di, quantity, unit, length):
    row = data_id(di)
    assert (row.quantity, row.unit, row.length) == (quantity, unit, length)


def test_settlement_periods_are_pattern_rows():
    row = data_id(0x0001000C)
    assert (row.period, row.index, row.quantity) == ("settlement", 12, "energy.active.import.total")
    with pytest.raises(UnknownDataId):
        data_id(0x0001000D)


def test_daily_frozen_pattern_rows_cover_62_freezes():
    assert data_id(0x05060001).name == "daily freeze time, daily freeze -1"
    last = data_id(0x0506013E)
    assert (last.period, last.index) == ("daily_frozen", 62)
    assert [m.key for m in last.members] == [
        "energy.active.import.total",
        *(f"energy.active.import.t{n}" for n in range(1, 5)),
    ]
    with pytest.raises(UnknownDataId):
        data_id(0x0506013F)
    with pytest.raises(UnknownDataId):
        data_id(0x05060100)


def test_daily_frozen_values_and_readings():
    block = hx("00 10 00 00  00 01 00 00  00 02 00 00  00 03 00 00  00 04 00 00")
    values = decode_values(0x05060101, block)
    assert values["energy.active.import.total"] == Decimal("10.00")
    assert values["energy.active.import.t4"] == Decimal("4.00")
    stamp = decode_value(0x05060001, hx("00 00 15 03 24"))  # wire mm hh DD MM YY
    assert stamp == MeterTime(datetime(2024, 3, 15, 0, 0))
    reply = ReadReply("000000000001", 0x05060101, values, version=Version.V2007)
    now = datetime(2024, 3, 15, 1, 0, tzinfo=UTC)
    readings = reply_to_readings(reply, now, freeze_time=stamp)
    assert {r.quantity for r in readings} == set(values)
    assert all(r.kind is ReadingKind.DAILY_FROZEN for r in readings)
    assert readings[0].freeze_time == stamp.aware
    assert reply_to_readings(reply, now) == []  # without its freeze time it cannot be placed


def test_blocks_accept_more_tariffs_than_four():
    raw = b"".join(bytes((0, n, 0, 0)) for n in range(6))  # total, t1..t5: n.00 kWh
    values = decode_values(0x0001FF00, raw)
    assert len(values) == 6 and values["energy.active.import.t5"] == Decimal("5.00")
    assert encode_value(0x0001FF00, values) == raw


def test_signed_values():
    assert decode_value(0x02020100, hx("00 25 81")) == Decimal("-12.500")  # XXX.XXX, sign in b7
    assert encode_value(0x02030000, Decimal("-0.1234")) == hx("34 12 80")
    with pytest.raises(Dlt645EncodeError):
        encode_value(0x00010000, Decimal("-1"))
    with pytest.raises(Dlt645EncodeError):
        encode_value(0x00010000, Decimal("1.234"))  # never rounded silently
    with pytest.raises(Dlt645EncodeError):
        encode_value(0x02010100, Decimal("1000.0"))


def test_status_word_3_relay_and_keep_power():
    word = decode_value(0x04000503, hx("10 10"))
    assert isinstance(word, StatusWord)
    assert "relay_open" in word and "keep_power" in word
    reply = ReadReply("000000000001", 0x04000503, {"status.word3": word})
    states = {r.quantity: r.value for r in reply_to_readings(reply, datetime.now(UTC))}
    assert states == {"status.word3": 0x1010, "relay.state": "open", "keep_power.state": "on"}


def test_status_word_7_cover_bits():
    word = decode_value(0x04000507, hx("00 06"))
    assert word.flags == ("meter_cover_open", "terminal_cover_open")


def test_cover_open_record_and_event():
    start = hx("05 04 03 02 01 24")  # ss mm hh DD MM YY → 2024-01-02 03:04:05
    end = hx("00 00 04 02 01 24")
    energies = b"".join(bytes((0, int(f"{i:02d}", 16), 0, 0)) for i in range(12))  # i.00 kWh
    record = decode_value(0x03300D01, start + end + energies)
    assert isinstance(record, EventRecord)
    assert record.start == MeterTime(datetime(2024, 1, 2, 3, 4, 5))
    assert record.values["energy.active.import.total.before"] == Decimal("0.00")
    assert record.values["energy.active.export.total.before"] == Decimal("1.00")
    reply = ReadReply("000000000001", 0x03300D01, {"events.meter_cover.record": record})
    (event,) = reply_to_events(reply)
    assert event.type is EventType.METER_COVER_OPEN and event.details["record_no"] == 1
    assert event.start == record.start.aware


def test_zero_timestamps_decode_to_none():
    assert decode_value(0x03110001, bytes(12)) == EventRecord(None, None, {})


def test_date_and_time_identifiers():
    assert decode_value(0x04000101, hx("05 15 03 24")) == date(2024, 3, 15)
    assert encode_value(0x04000101, date(2024, 3, 15)) == hx("05 15 03 24")  # Friday = 5
    assert str(decode_value(0x04000102, hx("30 20 10"))) == "10:20:30"


def test_1997_rows():
    assert decode_value(0xB611, hx("20 02"), Version.V1997) == Decimal("220")
    assert decode_values(0x9010, hx("56 34 12 00"), Version.V1997) == {
        "energy.active.import.total": Decimal("1234.56")
    }


def test_wire_errors_are_codec_errors():
    with pytest.raises(Dlt645Error):
        decode_value(0x00010000, hx("1A 00 00 00"))  # not BCD
    with pytest.raises(Dlt645Error):
        decode_value(0x00010000, hx("00 00"))  # wrong length
    with pytest.raises(Dlt645Error):
        decode_value(0x12345678, hx("00"))  # unknown


@pytest.mark.parametrize(("di", "index"), [(0x9410, 1), (0x9412, 1), (0x941F, 1), (0x9820, 2)])
def test_1997_previous_months_are_settlement_periods_not_current_readings(di, index):
    row = data_id(di, Version.V1997)
    assert (row.period, row.index) == ("settlement", index)
    current = data_id(di & ~0x0C00, Version.V1997)  # 94xx/98xx → 90xx
    assert current.period == "current" and current.key == row.key
    value = (
        {m.key: Decimal("1.00") for m in row.members} if row.members else Decimal("123.45")
    )
    data = encode_value(di, value, Version.V1997)
    assert decode_value(di, data, Version.V1997) == value
    reply = ReadReply("000000000001", di, {row.key: value}, version=Version.V1997)
    assert reply_to_readings(reply, datetime(2026, 1, 1, tzinfo=UTC)) == []
