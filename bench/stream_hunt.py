"""Benchmark: frames/s through the shared 68H … 16H hunt (``protocols/stream.py``), per protocol.

Usage: ``.venv/bin/python bench/stream_hunt.py [--frames N] [--rounds R]``

Each DL/T 645 and DL/T 698.45 ``StreamDecoder`` gets N frames with three noise bytes before each
(00 68 11: a false start), fed in 64-byte chunks.  The baseline in the same run is the same
frames through the one-shot ``decode_frame`` (no hunt, no chunking): the ratio is what hunting a
bus costs.  Best of R rounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols import dlt645, dlt698
from protocols.stream import FrameStream

NOISE = b"\x00\x68\x11"
GET_ADDRESS = bytes.fromhex("0501254001020000")  # GET-Request Normal of 40010200
FRAMES = {
    "DL/T 645": (
        dlt645.StreamDecoder,
        dlt645.decode_frame,
        bytes.fromhex("FEFEFEFE681290785634126891083333343389674533" + "5416"),
    ),
    "DL/T 698.45": (
        dlt698.StreamDecoder,
        dlt698.decode_frame,
        dlt698.encode_frame(
            dlt698.Frame(
                0x43, dlt698.ServerAddress("000000000001"), bytes.fromhex("0501254001020000")
            )
        ),
    ),
}


def stream_rate(make: Callable[[], FrameStream[object]], frame: bytes, n: int) -> float:
    """Frames/s out of a fresh stream decoder fed ``n`` noisy frames in 64-byte chunks."""
    data = (NOISE + frame) * n
    stream, got = make(), 0
    start = time.perf_counter()
    for i in range(0, len(data), 64):
        stream.feed(data[i : i + 64])
        while stream.next_frame() is not None:
            got += 1
    took = time.perf_counter() - start
    if got != n:
        raise SystemExit(f"{got} frames out of {n}")
    return n / took


def one_shot_rate(decode: Callable[[bytes], object], frame: bytes, n: int) -> float:
    """Frames/s of ``decode`` on the bare frame."""
    start = time.perf_counter()
    for _ in range(n):
        decode(frame)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'protocol':<14}{'stream frames/s':>18}{'decode_frame/s':>18}{'stream / one-shot':>20}")
    for name, (make, decode, frame) in FRAMES.items():
        stream = max(stream_rate(make, frame, args.frames) for _ in range(args.rounds))
        single = max(one_shot_rate(decode, frame, args.frames) for _ in range(args.rounds))
        print(f"{name:<14}{stream:>18,.0f}{single:>18,.0f}{stream / single:>20.2f}")


if __name__ == "__main__":
    main()
