"""The cost of the signed uplink (issue 19): on the gateway, and at the head-end's ingest.

Gateway: Ed25519 signatures per second over real encoded payloads (``Sealer.seal``: what the
uplink does per publish) — a status, and data batches of 100 and 500 sweep records (5 energy
registers each, compressed as published) — in CPU time of this process, plus verifications per
second.  A Raspberry Pi 4 estimate divides those rates by the ratio of ``openssl speed ed25519``
on this machine (same run) to the Pi 4's OpenSSL rate: published Cortex-A72 cycle counts at
the Pi 4's 1.5 GHz (``A72_CYCLES`` below; docs/benchmarks.md).

Ingest: CPU-ms per 1,000 readings of ``Ingestor.handle`` (decode, store in SQLite, ack) for the
same batches, unsigned from a gateway without a key (no verification) and signed from a gateway
with a registered key (verified), alternating ``--rounds`` times in one run; the ratio is what
counts on a shared machine.  Broker and network costs are the same either way and not included.

    .venv/bin/python bench/uplink_signing.py [--rounds 3] [--batches 40] [--records 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# OpenSSL 3.3.2 Ed25519 on a Cortex-A72, single core, median cycles: sign / verify
# (lib25519-20241004 doc/speed.md, https://lib25519.cr.yp.to/speed.html; those counts omit some
# EVP overhead, so the Pi 4 rates below are upper bounds of OpenSSL's own).
A72_CYCLES = (134_998, 425_152)
PI4_HZ = 1.5e9  # Raspberry Pi 4 Model B: Cortex-A72 at 1.5 GHz (1.8 GHz on boards since 2020)


def openssl_speed() -> tuple[float, float]:
    """``openssl speed ed25519`` here: (sign/s, verify/s), CPU time."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "ed25519"], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if "Ed25519" in x and "bits" in x)
    sign, verify = (float(v) for v in line.split()[-2:])
    return sign, verify


def payloads(records: int, batches: int) -> dict[str, bytes]:
    from protocols.uplink import Status, encode
    from tests.headend.gen import meter_ids, reading_batches

    health = {"meters_ok": 500, "uplink": {"batches": 10**6}}
    status = Status(gateway="gw-0001", state="online", time=datetime.now(UTC), epoch="be" * 8,
                    software="1.0.0", health=health)  # fmt: skip
    out = {"status": encode(status)}
    for n in (100, 500):
        [first] = reading_batches("gw-0001", "be" * 8, meter_ids(n), steps=1, per_batch=n)
        out[f"batch of {n} records"] = encode(first)
    return out


def cpu_rate(fn, payload: bytes, seconds: float = 1.0) -> float:
    """Calls per CPU second of ``fn(payload)`` (at least ``seconds`` of CPU)."""
    n, start = 0, time.process_time()
    while (spent := time.process_time() - start) < seconds:
        for _ in range(50):
            fn(payload)
        n += 50
    return n / spent


def gateway_side() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from protocols.uplink.envelope import Sealer, check, key_id

    private = Ed25519PrivateKey.generate()
    sealer = Sealer(private)
    keys = {key_id(private.public_key()): private.public_key()}
    topic = "taiqu/v1/gw-0001/up/data"
    here_sign, here_verify = openssl_speed()
    pi_sign, pi_verify = (PI4_HZ / c for c in A72_CYCLES)
    ratio_sign, ratio_verify = here_sign / pi_sign, here_verify / pi_verify
    print(f"load average {os.getloadavg()[0]:.1f}; openssl speed ed25519 here: {here_sign:.0f} "
          f"sign/s, {here_verify:.0f} verify/s; Pi 4 (A72 cycles at 1.5 GHz): {pi_sign:.0f} / "
          f"{pi_verify:.0f}; ratios {ratio_sign:.2f} / {ratio_verify:.2f}")  # fmt: skip
    print(f"{'payload':24} {'bytes':>7} {'sign/s':>9} {'us/sign':>8} {'Pi 4 sign/s':>12} "
          f"{'verify/s':>9} {'Pi 4 verify/s':>14}")  # fmt: skip
    for name, body in payloads(100, 1).items():
        signed = sealer.seal(topic, body)
        signs = cpu_rate(lambda b: sealer.seal(topic, b), body)
        verifies = cpu_rate(lambda p: check(topic, p, keys, required=True), signed)
        print(f"{name:24} {len(body):7} {signs:9.0f} {1e6 / signs:8.1f} {signs / ratio_sign:12.0f} "
              f"{verifies:9.0f} {verifies / ratio_verify:14.0f}")  # fmt: skip


def _ingest_once(path: str, signed: bool, batches: int, records: int) -> tuple[float, float]:
    """One ingest of the batches into a fresh SQLite database: (CPU-ms per 1,000 readings,
    µs of CPU to verify one of the signed payloads)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from headend.config import DatabaseSettings
    from headend.db import make_engine
    from headend.db.engine import writing
    from headend.db.migrate import upgrade
    from headend.ingest.store import Ingestor
    from headend.security.gateway_keys import register
    from protocols.uplink import encode
    from protocols.uplink.envelope import Sealer, check, key_id, raw_public
    from tests.headend.gen import meter_ids, reading_batches

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}", sqlite_synchronous="NORMAL"))
    upgrade(engine)
    gw, private = "gw-0001", Ed25519PrivateKey.generate()
    sealer, keys = Sealer(private), {key_id(private.public_key()): private.public_key()}
    if signed:
        with writing(engine) as conn:
            register(conn, gw, raw_public(private.public_key()), datetime.now(UTC))
    topic = f"taiqu/v1/{gw}/up/data"
    made = reading_batches(gw, "be" * 8, meter_ids(records), steps=batches, per_batch=records)
    bodies = [encode(b) for b in made]
    sent = [sealer.seal(topic, b) if signed else b for b in bodies]
    verify_us = 1e6 / cpu_rate(lambda p: check(topic, p, keys, required=True), sent[0], 0.3)
    ingestor, readings, now = Ingestor(), 0, datetime.now(UTC)
    start = time.process_time()
    for payload in sent:
        with writing(engine) as conn:
            outcome = ingestor.handle(conn, topic, payload, now)
        assert outcome.kind == "data", outcome.reason
        readings += outcome.readings
    spent = time.process_time() - start
    engine.dispose()
    return spent * 1e3 / (readings / 1e3), verify_us


def ingest_side(rounds: int, batches: int, records: int) -> None:
    cases = {"unsigned (no key, not verified)": False, "signed, verified": True}
    results: dict[str, list[float]] = {label: [] for label in cases}
    verify_us: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for label, signed in cases.items():
                cost, us = _ingest_once(f"{tmp}/{r}-{signed}.db", signed, batches, records)
                results[label].append(cost)
                verify_us += [us] if signed else []
    base = statistics.median(results["unsigned (no key, not verified)"])
    load = os.getloadavg()[0]
    print(f"\ningest (SQLite, {batches} batches x {records} records x 5 registers, "
          f"{rounds} alternating rounds; load average {load:.1f})")  # fmt: skip
    print(f"{'case':34} {'CPU-ms / 1,000 readings (runs)':>40} {'median':>8} {'ratio':>6}")
    for label, runs in results.items():
        med = statistics.median(runs)
        shown = " ".join(f"{v:.1f}" for v in runs)
        print(f"{label:34} {shown:>40} {med:8.2f} {med / base:6.3f}")
    us, per = statistics.median(verify_us), records * 5
    print(f"verification alone: {us:.0f} us of CPU per batch of {per} readings = "
          f"{us / per:.2f} CPU-ms per 1,000 readings")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()
    gateway_side()
    ingest_side(args.rounds, args.batches, args.records)


if __name__ == "__main__":
    main()
