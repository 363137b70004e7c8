"""Fuzzing the DL/T 698.45 decoders: 1,000,000 mutated inputs, typed errors only.

Usage: ``.venv/bin/python bench/dlt698_fuzz.py [--runs N] [--seed S]``

A structure-aware mutation fuzzer (no atheris needed): seeds are the golden frames of
``tests/protocols/dlt698/test_golden.py`` and the realistic APDUs of every service; each input
is a seed mutated 1–8 times (bit flips, random bytes, insertions, deletions, truncation,
splices of two seeds, length-field changes).  Half of the mutated frames get their length, HCS
and FCS repaired so the APDU decoder behind the link layer is reached, not just the CRC check.
Every input goes through ``decode_frame``, ``decode_apdu``, ``decode_data`` and the stream
decoder; anything but ``Dlt698Error`` is a crash (printed with its input, exit 1).
Prints executions, executions/s, how many inputs decoded, and the distinct error kinds.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocols.dlt698 import (  # noqa: E402
    Dlt698Error,
    StreamDecoder,
    crc16,
    decode_apdu,
    decode_data,
    decode_frame,
    encode_apdu,
)


def seeds() -> list[bytes]:
    """Golden frames, their APDUs and the realistic APDUs."""
    from tests.protocols.dlt698.realistic import REALISTIC
    from tests.protocols.dlt698.test_golden import APDUS, FRAMES

    frames = [bytes.fromhex(f[1].replace(" ", "")) for f in FRAMES]
    apdus = [bytes.fromhex(a[0].replace(" ", "")) for a in APDUS]
    apdus += [encode_apdu(m) for m in REALISTIC]
    apdus += [decode_frame(f).apdu for f in frames]
    return frames + apdus


def repair(raw: bytearray) -> bytes:
    """Fix the length field, HCS and FCS of something frame-shaped (so the APDU is reached)."""
    if len(raw) < 12 or raw[0] != 0x68:
        return bytes(raw)
    raw[-1] = 0x16
    length = len(raw) - 2
    raw[1:3] = length.to_bytes(2, "little")
    head = 5 + (raw[4] & 0x0F) + 1 + 1
    if head + 5 > len(raw):
        return bytes(raw)
    raw[head : head + 2] = crc16(raw[1:head]).to_bytes(2, "little")
    raw[-3:-1] = crc16(raw[1:-3]).to_bytes(2, "little")
    return bytes(raw)


def mutate(rng: random.Random, pool: list[bytes]) -> bytes:
    data = bytearray(rng.choice(pool))
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(7)
        if not data:
            data = bytearray(rng.randbytes(rng.randint(1, 40)))
        at = rng.randrange(len(data))
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at] = rng.randrange(256)
        elif op == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del data[at : at + rng.randint(1, 8)]
        elif op == 4:
            del data[at:]
        elif op == 5:
            other = rng.choice(pool)
            data[at:] = other[rng.randrange(len(other)) :]
        else:
            data[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF))
    return repair(data) if data[:1] == b"\x68" and rng.random() < 0.5 else bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=698)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pool = seeds()
    errors: collections.Counter[str] = collections.Counter()
    decoded = 0
    started = time.monotonic()
    for i in range(args.runs):
        data = pool[i] if i < len(pool) else mutate(rng, pool)
        for decode in (decode_frame, decode_apdu, decode_data):
            try:
                decode(data)
                decoded += 1
            except Dlt698Error as exc:
                errors[re.sub(r"[0-9A-F]{2,}|\d+", "N", str(exc))[:60]] += 1
            except Exception as exc:
                print(f"CRASH {type(exc).__name__}: {exc} on input {data.hex()}", file=sys.stderr)
                return 1
        if i % 16 == 0:
            stream = StreamDecoder()
            stream.feed(data + data[:7])
            stream.feed_eof()
            try:
                list(stream)
            except Exception as exc:
                print(
                    f"CRASH (stream) {type(exc).__name__}: {exc} on {data.hex()}", file=sys.stderr
                )
                return 1
    wall = time.monotonic() - started
    print(
        f"executions {args.runs:,} in {wall:.1f} s ({args.runs / wall:,.0f}/s), seeds {len(pool)}"
    )
    print(f"decoded without error: {decoded:,} of {3 * args.runs:,} decoder calls; crashes: 0")
    print(f"distinct typed-error kinds: {len(errors)}; most common:")
    for kind, n in errors.most_common(8):
        print(f"  {n:>9,}  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
