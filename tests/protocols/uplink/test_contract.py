"""The MQTT contract: fixture messages, round trips, and typed errors for garbage."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import ContractError
from protocols.model import Event, EventType, Reading, ReadingKind
from protocols.uplink import (
    Ack,
    Batch,
    Command,
    CommandAction,
    GapRecord,
    Topics,
    decode,
    decode_message,
    encode,
    events_to_records,
    parse_topic,
    reading_record_to_readings,
    readings_to_records,
    record_to_event,
)
from tests.fixtures import mqtt_fixtures

T0 = datetime(2026, 11, 24, 5, 15, tzinfo=UTC)


@pytest.mark.parametrize("fx", mqtt_fixtures("valid"), ids=lambda f: f.name)
def test_valid_fixtures_decode(fx):
    gateway, _, message = decode_message(fx.topic, fx.payload)
    assert gateway == "gw-0001"
    assert type(message).__name__ == fx.kind
    again = decode(encode(message), type(message))
    assert again == message


@pytest.mark.parametrize("fx", mqtt_fixtures("invalid"), ids=lambda f: f.name)
def test_invalid_fixtures_raise_contract_error(fx):
    with pytest.raises(ContractError) as info:
        decode_message(fx.topic, fx.payload)
    assert fx.reason.lower() in str(info.value).lower()


def test_topics_confine_a_gateway_to_its_namespace():
    t = Topics("gw-7")
    assert t.data == "taiqu/v1/gw-7/up/data"
    assert t.cmd == "taiqu/v1/gw-7/down/cmd"
    assert parse_topic(t.result) == ("gw-7", "up", "result")
    with pytest.raises(ValueError):
        Topics("gw/7")
    with pytest.raises(ContractError):
        parse_topic("taiqu/v1/gw-7/down/data")


def test_readings_group_into_records_and_back_exactly():
    mt = datetime(2026, 11, 24, 13, 15, 1, tzinfo=UTC) + timedelta(hours=0)
    readings = [
        Reading("000000000001", "energy.active.import.total", Decimal("1234.50"), T0, meter_time=mt),
        Reading("000000000001", "energy.active.import.t1", Decimal("0.01"), T0, meter_time=mt),
        Reading("000000000001", "relay.state", "open", T0, meter_time=mt),
        Reading("000000000001", "events.power_down.count", 7, T0, meter_time=mt),
        Reading("000000000002", "energy.active.import.total", Decimal("5"), T0,
                kind=ReadingKind.DAILY_FROZEN, freeze_time=T0, flags=frozenset({"backfilled"})),
    ]
    records = readings_to_records(readings)
    assert len(records) == 2
    batch = Batch(gateway="gw-1", epoch="00ff00ff00ff00ff", seq=10, sent=T0, records=tuple(records))
    decoded = decode(encode(batch), Batch)
    assert decoded.last_seq == 11
    back = [r for rec in decoded.records for r in reading_record_to_readings(rec)]
    assert sorted(back, key=lambda r: (r.meter, r.quantity)) == sorted(
        readings, key=lambda r: (r.meter, r.quantity)
    )
    assert isinstance(back[0].value, Decimal | int | str)


def test_events_round_trip_with_details():
    event = Event("000000000001", EventType.METER_COVER_OPEN, T0, T0 + timedelta(minutes=2),
                  details={"count": 3, "energy_before": Decimal("12.5")})
    (record,) = events_to_records([event])
    batch = Batch(gateway="gw-1", epoch="00ff00ff00ff00ff", seq=1, sent=T0,
                  records=(record, GapRecord(first=1, last=1, reason="test")))
    back = record_to_event(decode(encode(batch), Batch).records[0])
    assert back.type is EventType.METER_COVER_OPEN
    assert back.details == {"count": 3, "energy_before": "12.5"}
    assert back.key == event.key


def test_command_signing_bytes_are_canonical_and_exclude_signature():
    cmd = Command(id="c1", gateway="gw-1", meters=("000000000001",), action=CommandAction.RELAY_TRIP,
                  issued=T0, valid_until=T0 + timedelta(minutes=5), nonce="0123456789abcdef")
    signed = cmd.model_copy(update={"signature": {"alg": "ed25519", "key_id": "k", "value": "x"}})
    assert cmd.signing_bytes() == signed.signing_bytes()
    other = cmd.model_copy(update={"meters": ("000000000002",)})
    assert other.signing_bytes() != cmd.signing_bytes()
    assert cmd.expired(T0 + timedelta(minutes=5)) and not cmd.expired(T0)


def test_zip_bomb_is_refused():
    bomb = zlib.compress(b"{" + b" " * (17 * 1024 * 1024) + b"}")
    with pytest.raises(ContractError, match="inflates beyond"):
        decode(bomb, Ack)


def test_batches_are_compressed_on_the_wire():
    readings = [
        Reading(f"{n:012d}", "energy.active.import.total", Decimal("1000.00") + n, T0)
        for n in range(32)
    ]
    batch = Batch(gateway="gw-1", epoch="00ff00ff00ff00ff", seq=1, sent=T0,
                  records=tuple(readings_to_records(readings)))
    wire = encode(batch)
    assert wire[:1] == b"\x78"
    assert len(wire) < len(encode(batch, compress=False)) / 2


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_contract_error(blob):
    for schema in (Batch, Command, Ack):
        try:
            decode(blob, schema)
        except ContractError:
            pass


def _sweep(meters: int) -> Batch:
    readings = [
        Reading(f"2026112400{n:02d}", q, Decimal("1000.00") + n * 7 + i, T0, meter_time=T0)
        for n in range(meters)
        for i, q in enumerate(("energy.active.import.total", "energy.active.import.t1"))
    ]
    return Batch(gateway="gw-1", epoch="00ff00ff00ff00ff", seq=1, sent=T0,
                 records=tuple(readings_to_records(readings)))


def test_preset_dictionary_makes_small_sweeps_smaller_and_plain_zlib_still_decodes():
    batch = _sweep(16)
    plain = zlib.compress(encode(batch, compress=False), 6)
    with_dict = encode(batch)
    assert with_dict[1] & 0x20  # FDICT announced in the zlib header
    assert len(with_dict) < len(plain)
    assert decode(with_dict, Batch) == decode(plain, Batch) == batch


def test_unknown_dictionary_is_a_contract_error():
    deflater = zlib.compressobj(zdict=b"some other dictionary")
    payload = deflater.compress(encode(_sweep(2), compress=False)) + deflater.flush()
    with pytest.raises(ContractError, match="unknown dictionary"):
        decode(payload, Batch)


def test_empty_defaults_stay_off_the_wire():
    body = encode(_sweep(1), compress=False)
    assert b'"fl"' not in body and b'"resend"' not in body
    flagged = _sweep(1).model_copy(update={"resend": True})
    assert b'"resend":true' in encode(flagged, compress=False)


_QS = ["energy.active.import.total", "energy.active.import.t1", "relay.state",
       "events.power_down.count"]


@st.composite
def _readings(draw):
    zone = draw(st.sampled_from([None, "Asia/Shanghai", "Europe/Berlin"]))
    out = []
    for n in range(draw(st.integers(1, 12))):
        at = T0 + timedelta(seconds=draw(st.integers(0, 900)),
                            microseconds=draw(st.sampled_from([0, 0, 0, 250_000])))
        mt = None
        if zone and draw(st.booleans()):
            from zoneinfo import ZoneInfo

            mt = (at - timedelta(seconds=draw(st.integers(-120, 120)))).astimezone(ZoneInfo(zone))
            mt = mt.replace(microsecond=0)
        kind = draw(st.sampled_from([ReadingKind.INTERVAL, ReadingKind.INTERVAL,
                                     ReadingKind.ON_DEMAND]))
        flags = draw(st.sampled_from([frozenset(), frozenset(), frozenset({"clock_unsynced"})]))
        for q in draw(st.lists(st.sampled_from(_QS), min_size=1, max_size=4, unique=True)):
            value = (str(draw(st.sampled_from(["open", "closed"]))) if q == "relay.state"
                     else draw(st.integers(0, 9)) if q.startswith("events")
                     else Decimal(draw(st.integers(0, 10**8))).scaleb(-2))
            out.append(Reading(f"{n:012d}", q, value, at, kind=kind, meter_time=mt, flags=flags))
    return out


@given(_readings())
def test_sweeps_round_trip_every_reading_exactly(readings):
    records = readings_to_records(readings)
    batch = Batch(gateway="gw-1", epoch="00ff00ff00ff00ff", seq=3, sent=T0, records=tuple(records))
    decoded = decode(encode(batch), Batch)
    assert decoded == batch
    assert len(decoded.records) == len(records)  # one sequence number per record, as sent
    for a, b in zip(decoded.records, records, strict=True):
        if b.meter_time is not None:
            assert a.meter_time.utcoffset() == b.meter_time.utcoffset()  # the meter's wall time


def test_a_sweep_is_smaller_than_its_records():
    batch = _sweep(32)
    body = encode(batch, compress=False)
    assert b'"r":"sw"' in body and b'"r":"rd"' not in body
    data = batch.model_dump_json(by_alias=True, exclude_none=True).encode()
    assert len(encode(batch)) < 0.9 * len(zlib.compress(data, 9))


@pytest.mark.parametrize("bad", [
    {"r": "sw", "k": "interval", "gt": "2026-01-01T00:00:00", "qs": [], "rows": []},
    {"r": "sw", "k": "interval", "gt": "2026-01-01T00:00:00Z", "qs": ["energy.active.import.total"],
     "rows": [["m1", 0]]},
    {"r": "sw", "k": "interval", "gt": "2026-01-01T00:00:00Z", "qs": ["energy.active.import.total"],
     "rows": [["m1", "0", None, "1.0"]]},
    {"r": "sw", "k": "interval", "gt": "2026-01-01T00:00:00Z", "qs": ["energy.active.import.total"],
     "rows": [["m1", 0, 5, "1.0"]]},  # a meter time without the meters' offset
    {"r": "sw", "k": "interval", "gt": "2026-01-01T00:00:00Z", "qs": ["energy.banana"],
     "rows": [["m1", 0, None, "1.0"]]},
])
def test_malformed_sweeps_are_contract_errors(bad):
    import json

    body = {"v": 1, "gw": "gw-1", "epoch": "00ff00ff00ff00ff", "seq": 1,
            "sent": "2026-01-01T00:00:00Z", "records": [bad]}
    with pytest.raises(ContractError):
        decode(json.dumps(body).encode(), Batch)
