"""``decode_data``: sweeps kept as columns give exactly what the typed path gives, or its error."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import ContractError
from protocols.model import Reading, ReadingKind
from protocols.uplink import (
    Batch,
    EventRecord,
    GapRecord,
    ReadingRecord,
    Topics,
    decode_message,
    encode,
    readings_to_records,
)
from protocols.uplink.columns import DataBatch, decode_data

T0 = datetime(2026, 11, 24, 5, 15, tzinfo=UTC)
GW = "gw-1"
SWEEP: dict[str, Any] = {
    "r": "sw",
    "k": "interval",
    "gt": "2026-11-24T05:15:02Z",
    "mz": 28800,
    "qs": ["energy.active.import.total", "events.power_down.count", "relay.state"],
    "rows": [
        ["202600000001", 0, -1, "12.50", 3, "closed"],
        ["202600000002", 1, None, "0.00", 0, "open"],
    ],
}
BODY: dict[str, Any] = {
    "v": 1,
    "gw": GW,
    "epoch": "00ff00ff00ff00ff",
    "seq": 7,
    "sent": "2026-11-24T05:16:00Z",
    "records": [SWEEP],
}


def flatten(batch: DataBatch) -> list[tuple[Any, ...]]:
    """Every record of a decoded batch in seq order, in one comparable form."""
    out: list[tuple[Any, ...]] = []
    for sweep in batch.sweeps:
        for i, meter in enumerate(sweep.meters):
            values = {q: col[i] for q, col in zip(sweep.quantities, sweep.values, strict=True)}
            mt = sweep.meter_times[i]
            out.append(
                (
                    batch.seq + sweep.index + i,
                    meter,
                    sweep.kind,
                    sweep.gateway_times[i],
                    mt.isoformat() if mt else None,
                    None,
                    tuple(sorted(sweep.flags)),
                    sweep.command,
                    tuple(sorted(values.items())),
                )
            )
    for index, record in batch.records:
        if isinstance(record, ReadingRecord):
            mt = record.meter_time
            out.append(
                (
                    batch.seq + index,
                    record.meter,
                    record.kind,
                    record.gateway_time,
                    mt.isoformat() if mt else None,
                    record.freeze_time,
                    tuple(sorted(record.flags)),
                    record.command,
                    tuple(sorted(record.values.items())),
                )
            )
        else:
            out.append((batch.seq + index, record))
    return sorted(out, key=lambda r: r[0])


def typed_outcome(payload: bytes) -> tuple[str, Any]:
    """What the typed path (expand, pydantic, value checks) makes of ``payload``."""
    try:
        _, _, batch = decode_message(Topics(GW).data, payload)
    except ContractError as exc:
        return "refused", str(exc)
    assert isinstance(batch, Batch)
    db = DataBatch.of(batch)
    return "accepted", (db.epoch, db.seq, db.size, db.resend, flatten(db))


def column_outcome(payload: bytes) -> tuple[str, Any]:
    try:
        db = decode_data(GW, payload)
    except ContractError as exc:
        return "refused", str(exc)
    return "accepted", (db.epoch, db.seq, db.size, db.resend, flatten(db))


def body_with(path: tuple[Any, ...], value: Any, *, delete: bool = False) -> bytes:
    body = copy.deepcopy(BODY)
    where: Any = body
    for key in path[:-1]:
        where = where[key]
    if delete:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return json.dumps(body).encode()


S = ("records", 0)
ROW = (*S, "rows", 0)
MALFORMED = {
    "empty meter": body_with((*ROW, 0), ""),
    "meter with a space": body_with((*ROW, 0), "2026 0001"),
    "meter of 33 characters": body_with((*ROW, 0), "1" * 33),
    "meter smuggling a newline": body_with((*ROW, 0), "202600000001\n202600000002"),
    "meter as a number": body_with((*ROW, 0), 202600000001),
    "meter null": body_with((*ROW, 0), None),
    "offset as text": body_with((*ROW, 1), "0"),
    "offset as boolean": body_with((*ROW, 1), True),
    "offset out of range": body_with((*ROW, 1), 10**10),
    "offset fractional": body_with((*ROW, 1), 1.5),
    "lag as text": body_with((*ROW, 2), "-1"),
    "lag out of range": body_with((*ROW, 2), -(10**10)),
    "lag without the meters' zone": body_with((*S, "mz"), None, delete=True),
    "decimal with a comma": body_with((*ROW, 3), "12,50"),
    "decimal NaN": body_with((*ROW, 3), "NaN"),
    "decimal Infinity": body_with((*ROW, 3), "Infinity"),
    "decimal as a number": body_with((*ROW, 3), 12.5),
    "decimal smuggling a newline": body_with((*ROW, 3), "12.50\n13.00"),
    "decimal empty": body_with((*ROW, 3), ""),
    "counter as text": body_with((*ROW, 4), "3"),
    "counter fractional": body_with((*ROW, 4), 3.5),
    "every value null": body_with(ROW, ["202600000001", 0, -1, None, None, None]),
    "unknown quantity": body_with((*S, "qs", 0), "energy.banana"),
    "quantity names not a list": body_with((*S, "qs"), "energy.active.import.total"),
    "rows not a list": body_with((*S, "rows"), {"a": 1}),
    "row too short": body_with(ROW, ["202600000001", 0, -1, "1.00"]),
    "row not a list": body_with(ROW, "202600000001"),
    "unknown kind": body_with((*S, "k"), "hourly"),
    "kind missing": body_with((*S, "k"), None, delete=True),
    "naive sweep time": body_with((*S, "gt"), "2026-11-24T05:15:02"),
    "fractional sweep time": body_with((*S, "gt"), "2026-11-24T05:15:02.5Z"),
    "sweep time not a time": body_with((*S, "gt"), "yesterday"),
    "zone of a day": body_with((*S, "mz"), 86400),
    "zone as text": body_with((*S, "mz"), "28800"),
    "flags not a list": body_with((*S, "fl"), "backfilled"),
    "flag not text": body_with((*S, "fl"), [1]),
    "command too long": body_with((*S, "c"), "c" * 65),
    "command not text": body_with((*S, "c"), 5),
    "spoofed gateway": body_with(("gw",), "gw-2"),
    "epoch not hex": body_with(("epoch",), "XYZXYZXYZ"),
    "negative seq": body_with(("seq",), -1),
    "seq beyond 63 bits": body_with(("seq",), 2**63),
    "naive sent": body_with(("sent",), "2026-11-24T05:16:00"),
    "unknown batch key": body_with(("extra",), 1),
    "no records": body_with(("records",), []),
    "records not a list": body_with(("records",), {"0": SWEEP}),
    "record not an object": body_with(("records",), [[1, 2]]),
    "only an empty sweep": body_with((*S, "rows"), []),
    "wrong version": body_with(("v",), 2),
    "time beyond year 9999": body_with((*S, "gt"), "9999-12-31T23:59:59Z"),
}
UNUSUAL_BUT_VALID = {
    "a null value": body_with((*ROW, 5), None),
    "duplicate quantity": body_with((*S,), {**SWEEP, "qs": [*SWEEP["qs"][:2], SWEEP["qs"][0]]}),
    "state as a number": body_with((*ROW, 5), 1),
    "counter as boolean": body_with((*ROW, 4), True),
    "sweep time with an offset": body_with((*S, "gt"), "2026-11-24T13:15:02+08:00"),
    "sweep time with zero fraction": body_with((*S, "gt"), "2026-11-24T05:15:02.000Z"),
    "zone with seconds": body_with((*S, "mz"), 3601),
    "no zone, no meter times": body_with(
        S, {**{k: v for k, v in SWEEP.items() if k != "mz"}, "rows": [["m1", 0, None, "1", 1, "x"]]}
    ),
    "unknown sweep key (ignored)": body_with((*S, "zz"), 1),
    "decimal forms": body_with(ROW, ["202600000001", 0, -1, "+1.e3", 3, "closed"]),
    "decimal with spaces": body_with((*ROW, 3), " 12.50 "),
    "decimal with underscores": body_with((*ROW, 3), "1_000.5"),
    "resend as text": body_with(("resend",), "yes"),
    "seq as text": body_with(("seq",), "7"),
    "version as boolean": body_with(("v",), True),
    "sent with a space": body_with(("sent",), "2026-11-24 05:16:00Z"),
    "flags and command": body_with(S, {**SWEEP, "fl": ["backfilled", "a"], "c": "cmd-1"}),
    "an empty sweep beside a full one": body_with(("records",), [{**SWEEP, "rows": []}, SWEEP]),
    "mixed records": body_with(
        ("records",),
        [
            SWEEP,
            {"r": "gap", "first": 1, "last": 3, "reason": "disk budget exceeded", "readings": 5},
            {"r": "ev", "m": "202600000001", "t": "power_down", "s": "2026-11-24T05:00:00Z"},
            {
                "r": "rd",
                "m": "202600000003",
                "k": "daily_frozen",
                "gt": "2026-11-24T05:15:00Z",
                "ft": "2026-11-24T00:00:00+08:00",
                "q": {"energy.active.import.total": "1.00"},
            },
            SWEEP,
        ],
    ),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_sweep_messages_are_refused_with_the_typed_paths_reason(payload: bytes) -> None:
    outcome = column_outcome(payload)
    assert outcome[0] == "refused"
    assert outcome == typed_outcome(payload)


@pytest.mark.parametrize("payload", UNUSUAL_BUT_VALID.values(), ids=UNUSUAL_BUT_VALID.keys())
def test_unusual_messages_decode_as_the_typed_path_decodes_them(payload: bytes) -> None:
    assert column_outcome(payload) == typed_outcome(payload)


def test_a_gateways_sweep_takes_the_column_path() -> None:
    payload = json.dumps(BODY).encode()
    decoded = decode_data(GW, payload)
    assert (len(decoded.sweeps), decoded.records, decoded.size) == (1, (), 2)
    sweep = decoded.sweeps[0]
    assert sweep.meters == ("202600000001", "202600000002")
    assert sweep.values == (("12.50", "0.00"), (3, 0), ("closed", "open"))
    assert sweep.meter_times[0] is not None
    assert sweep.meter_times[0].isoformat() == "2026-11-24T13:15:01+08:00"  # the meter's wall time
    assert sweep.meter_times[1] is None
    assert column_outcome(payload) == typed_outcome(payload)


_QS = [
    "energy.active.import.total",
    "energy.active.import.t1",
    "relay.state",
    "events.power_down.count",
    "voltage.a",
]


@st.composite
def _readings(draw: Any) -> list[Reading]:
    zone = draw(st.sampled_from([None, "Asia/Shanghai", "America/St_Johns"]))
    names = draw(st.lists(st.sampled_from(_QS), min_size=1, max_size=5, unique=True))
    out = []
    for n in range(draw(st.integers(1, 20))):
        at = T0 + timedelta(
            seconds=draw(st.integers(-5, 900)),
            microseconds=draw(st.sampled_from([0, 0, 0, 0, 250_000])),
        )
        mt = None
        if zone and draw(st.booleans()):
            from zoneinfo import ZoneInfo

            mt = (at - timedelta(seconds=draw(st.integers(-120, 120)))).astimezone(ZoneInfo(zone))
            mt = mt.replace(microsecond=0)
        kind = draw(st.sampled_from(list(ReadingKind)))
        flags = draw(st.sampled_from([frozenset(), frozenset({"clock_unsynced", "backfilled"})]))
        for q in names if draw(st.integers(0, 5)) else names[:1]:
            value: Decimal | int | str = (
                draw(st.sampled_from(["open", "closed"]))
                if q == "relay.state"
                else draw(st.integers(0, 2**70))
                if q.startswith("events")
                else Decimal(draw(st.integers(-(10**12), 10**12))).scaleb(-draw(st.integers(0, 4)))
            )
            out.append(Reading(f"2026{n:08d}", q, value, at, kind=kind, meter_time=mt, flags=flags))
    return out


@settings(max_examples=150, deadline=None)
@given(_readings(), st.integers(0, 2**40), st.sampled_from([None, "cmd-42"]))
def test_gateway_batches_decode_the_same_either_way(readings, seq, command) -> None:
    records = readings_to_records(readings, command)
    extra: list[ReadingRecord | EventRecord | GapRecord] = [
        GapRecord(first=0, last=0, reason="disk budget exceeded")
    ]
    batch = Batch(
        gateway=GW, epoch="00ff00ff00ff00ff", seq=seq, sent=T0, records=(*records, *extra)
    )
    payload = encode(batch)
    assert column_outcome(payload) == typed_outcome(payload)
    if b'"r":"sw"' in encode(batch, compress=False):
        assert decode_data(GW, payload).sweeps  # the column path was taken
