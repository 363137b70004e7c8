"""Uplink bytes per meter per day for the default schedule (goal ≤ 5 KB), and what would meet it.

Default schedule (gateway.toml): an energy sweep (total + t1…t4) every 15 minutes = 96 sweeps;
events polled every 5 minutes with no events (nothing to send); one daily frozen record; a
retained health status every 15 minutes and a birth message per day.  Each sweep of the gateway's
N meters is one batch when the uplink is up (the drain sends what a sweep appended).  Counted:
payload bytes, plus the MQTT framing of every PUBLISH (fixed header, topic, packet id), the
PUBACKs the gateway sends for downlink messages and its keep-alive pings; downlink (Acks) shown
apart.  TCP/IP and TLS overhead come on top and are estimated separately.

The payloads are made by the contract's own ``protocols.uplink.encode``.  Alternatives that would
change the contract are measured here by local re-encodings (never by editing the contract).

Run: ``.venv/bin/python bench/gateway_uplink_bytes.py``
"""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from protocols.model import Reading, ReadingKind
from protocols.quantities import ENERGY_TARIFFS, ENERGY_TOTAL
from protocols.uplink import Ack, Batch, Status, Topics, encode, readings_to_records

GW = "gw-0001"
TOPICS = Topics(GW)
DAY = datetime(2026, 11, 24, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
SWEEPS = 96
STATUS_PER_DAY = 96
KEEPALIVE = 30  # seconds: one PINGREQ (2 bytes) per interval without other traffic at worst
HEALTH = {
    "meters": 64,
    "meters_ok": 64,
    "bus": {"bus1": {"ok": 64, "timeouts": 0, "noise": 0}},
    "store": {"unacked": 0, "oldest_unacked_s": 0, "bytes": 1234567, "dropped": 0},
    "uplink": {"batches": 96, "acks": 96, "rewinds": 0, "connects": 1},
    "cpu_temp_c": 48.5,
}


def publish_overhead(topic: str, payload: int) -> int:
    """MQTT 3.1.1 PUBLISH at QoS 1: fixed header + remaining length + topic + packet id."""
    remaining = 2 + len(topic) + 2 + payload
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    return 1 + length_bytes + 2 + len(topic) + 2


def day_of_sweeps(meters: list[str], *, micro: bool) -> list[list[Reading]]:
    rng = random.Random(7)
    totals = {
        m: Decimal(rng.randint(500, 20000)) + Decimal(rng.randint(0, 99)) / 100 for m in meters
    }
    sweeps = []
    for n in range(SWEEPS):
        at = DAY + timedelta(minutes=15 * n, seconds=2)
        readings = []
        for i, m in enumerate(meters):
            totals[m] += Decimal(rng.randint(0, 150)) / 100
            gt = at + timedelta(
                seconds=i * 0.35, microseconds=rng.randint(0, 999_999) if micro else 0
            )
            if not micro:
                gt = gt.replace(microsecond=0)
            mt = (
                (gt - timedelta(seconds=rng.randint(0, 3)))
                .astimezone(SHANGHAI)
                .replace(microsecond=0)
            )
            tariffs = [
                (totals[m] * share).quantize(Decimal("0.01"))
                for share in (Decimal("0.1"), Decimal("0.4"), Decimal("0.3"))
            ]
            values = [totals[m], *tariffs, totals[m] - sum(tariffs)]
            for q, v in zip((ENERGY_TOTAL, *ENERGY_TARIFFS), values, strict=True):
                readings.append(Reading(m, q, v, gt, meter_time=mt))
        sweeps.append(readings)
    return sweeps


def frozen(meters: list[str]) -> list[Reading]:
    ft = DAY.astimezone(SHANGHAI)
    return [
        Reading(
            m,
            q,
            Decimal("1234.56"),
            DAY + timedelta(minutes=5, seconds=i),
            kind=ReadingKind.DAILY_FROZEN,
            meter_time=ft,
            freeze_time=ft,
        )
        for i, m in enumerate(meters)
        for q in (ENERGY_TOTAL, *ENERGY_TARIFFS)
    ]


def batch(records: list, seq: int) -> Batch:
    return Batch(gateway=GW, epoch="5f0c2a9e41d7b3c8", seq=seq, sent=DAY, records=tuple(records))


def measure(
    n_meters: int,
    *,
    micro: bool,
    sweeps_per_batch: int = 1,
    encoder=None,
    statuses: int = STATUS_PER_DAY,
) -> dict[str, float]:
    """Bytes per meter per day by category."""
    meters = [f"2026112{n:05d}" for n in range(1, n_meters + 1)]
    encoder = encoder or (lambda b: encode(b))
    data = framing = acks_down = 0
    seq = 1
    groups = day_of_sweeps(meters, micro=micro)
    chunks = [
        [r for g in groups[i : i + sweeps_per_batch] for r in g]
        for i in range(0, SWEEPS, sweeps_per_batch)
    ]
    for readings in [*chunks, frozen(meters)]:
        records = readings_to_records(readings)
        payload = encoder(batch(records, seq))
        data += len(payload)
        framing += publish_overhead(TOPICS.data, len(payload))
        ack = encode(Ack(epoch="5f0c2a9e41d7b3c8", upto=seq + len(records) - 1))
        acks_down += len(ack) + publish_overhead(TOPICS.ack, len(ack))
        framing += 4  # the gateway's PUBACK for the Ack
        seq += len(records)
    status = encode(
        Status(
            gateway=GW,
            state="online",
            time=DAY,
            software="0.1.0",
            config_hash="9c1e7a",
            archive_version=3,
            epoch="5f0c2a9e41d7b3c8",
            clock_synced=True,
            health=HEALTH,
        )
    )
    status_bytes = statuses * (len(status) + publish_overhead(TOPICS.status, len(status)))
    pings = 2 * 86400 // KEEPALIVE  # upper bound: PINGREQ when idle for a keep-alive interval
    total = data + framing + status_bytes + pings
    return {
        "data": data / n_meters,
        "framing": framing / n_meters,
        "status": status_bytes / n_meters,
        "pings": pings / n_meters,
        "total": total / n_meters,
        "ack_down": acks_down / n_meters,
        "publishes": len(chunks) + 1 + statuses,
    }


# -- alternatives (would change the contract; measured locally) ------------------------------------

ZDICT = json.dumps(
    {
        "v": 1,
        "gw": "",
        "epoch": "",
        "seq": 0,
        "sent": "",
        "records": [
            {
                "r": "rd",
                "m": "202611200000",
                "k": "interval",
                "gt": "2026-11-24T00:00:00Z",
                "mt": "2026-11-24T08:00:00+08:00",
                "fl": [],
                "q": {ENERGY_TOTAL: "", **{t: "" for t in ENERGY_TARIFFS}},
            }
        ],
    }
).encode()


def zdict_encoder(b: Batch) -> bytes:
    """The same JSON compressed with a preset dictionary of keys and quantity names."""
    body = b.model_dump_json(by_alias=True, exclude_none=True).encode()
    c = zlib.compressobj(9, zdict=ZDICT)
    return c.compress(body) + c.flush()


def columnar_encoder(b: Batch) -> bytes:
    """A sweep as columns: names once, per meter [id, gt offset, mt offset, values…]."""
    records = [r for r in b.records]
    names = list(records[0].values)
    base = records[0].gateway_time
    rows = [
        [
            r.meter,
            round((r.gateway_time - base).total_seconds()),
            round((r.meter_time - r.gateway_time).total_seconds()) if r.meter_time else None,
            *[r.values.get(n) for n in names],
        ]
        for r in records
    ]
    body = {
        "v": 1,
        "gw": b.gateway,
        "epoch": b.epoch,
        "seq": b.seq,
        "sent": b.sent.isoformat(),
        "sweeps": [
            {
                "k": records[0].kind.value,
                "gt": base.isoformat(),
                "tz": "+08:00",
                "q": names,
                "rows": rows,
            }
        ],
    }
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 9)


def main() -> None:
    print("Uplink bytes per meter per day, default schedule (96 energy sweeps of total+t1..t4,")
    print("events polled with none, 1 daily frozen record, health status every 15 min)")
    print()
    header = (
        f"{'meters':>6} {'data':>7} {'framing':>7} {'status':>7} {'pings':>6} {'TOTAL':>7}"
        f"   {'ack↓':>6}"
    )
    for micro in (True, False):
        label = "gateway_time with microseconds" if micro else "gateway_time truncated to seconds"
        print(f"current contract encoding (zlib-6 JSON), one batch per sweep, {label}:")
        print(header)
        for n in (1, 16, 64, 256):
            m = measure(n, micro=micro)
            print(
                f"{n:>6} {m['data']:>7.0f} {m['framing']:>7.0f} {m['status']:>7.0f} "
                f"{m['pings']:>6.0f} "
                f"{m['total']:>7.0f}   {m['ack_down']:>6.0f}"
            )
        print()
    baseline = {n: measure(n, micro=True)["total"] for n in (16, 64, 256)}
    print("alternatives: total B/meter/day (ratio to the current encoding in this run)")
    variants = {
        "seconds-only gateway_time": dict(micro=False),
        "health status hourly (not 15 min)": dict(micro=True, statuses=24),
        "seconds + hourly status": dict(micro=False, statuses=24),
        "4 sweeps per batch (hourly linger)": dict(micro=True, sweeps_per_batch=4),
        "preset zlib dictionary (zdict)": dict(micro=True, encoder=zdict_encoder),
        "seconds + zdict": dict(micro=False, encoder=zdict_encoder),
        "columnar sweep records": dict(micro=False, encoder=columnar_encoder),
    }
    print(f"{'variant':<36}" + "".join(f"{f'N={n}':>16}" for n in baseline))
    for name, kw in variants.items():
        cells = []
        for n, base in baseline.items():
            total = measure(n, **kw)["total"]
            cells.append(f"{total:>8.0f} ({total / base:4.2f})")
        print(f"{name:<36}" + "".join(f"{c:>16}" for c in cells))
    print()
    print("TCP/IP adds ~40-52 B per segment (TLS ~29 B per record): with one batch per sweep that")
    print("is ~96-200 segments per gateway per day, i.e. < 100 B per meter per day at N=64.")


if __name__ == "__main__":
    main()
