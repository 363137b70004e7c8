"""The shared 68H … 16H hunt: one mixed bus, each protocol's decoder finds its frames only."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dlt645.stream import StreamDecoder as Dlt645Stream
from protocols.dlt698 import Frame, ServerAddress, encode_frame
from protocols.dlt698.stream import StreamDecoder as Dlt698Stream

# A DL/T 645 read request with FE wake-up bytes (the mixed-bus frame of dlt698/test_frame.py).
DLT645 = bytes.fromhex("FEFEFEFE68129078563412681104333334336816")
DLT698 = encode_frame(Frame(0x43, ServerAddress("000000000001"), bytes.fromhex("0501254001020000")))


@given(
    st.lists(st.sampled_from(["645", "698", "noise"]), max_size=12),
    st.randoms(use_true_random=False),
)
@settings(deadline=None, max_examples=60)
def test_each_decoder_takes_its_frames_from_a_mixed_bus(
    plan: list[str], rng: random.Random
) -> None:
    parts = {"645": DLT645, "698": DLT698}
    bus = b"".join(parts.get(p) or bytes(rng.randrange(256) for _ in range(5)) for p in plan)
    d645, d698 = Dlt645Stream(), Dlt698Stream()
    got: dict[str, int] = {"645": 0, "698": 0}
    pos = 0
    while pos < len(bus):
        step = rng.randrange(1, 24)
        for name, decoder in (("645", d645), ("698", d698)):
            decoder.feed(bus[pos : pos + step])
            got[name] += len(list(decoder))
        pos += step
    for decoder in (d645, d698):
        decoder.feed_eof()
    got["645"] += len(list(d645))
    got["698"] += len(list(d698))
    # 5 noise bytes cannot hold a whole frame (DL/T 645 needs 12); a false start is abandoned
    assert got == {"645": plan.count("645"), "698": plan.count("698")}
    assert (d645.frames, d698.frames) == (got["645"], got["698"])
    assert d645.buffered == d698.buffered == 0
