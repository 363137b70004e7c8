"""Modbus codec throughput vs. pymodbus's bare RTU framing, measured in the same run.

Prints, for an SDM630 full poll (0x0000 ×80 input registers, 40 float32 rows of which 27 are
mapped quantities):

- requests built/s: ``ModbusMaster.send(ReadRegisters)`` (validated dataclass → frame) against
  pymodbus ``FramerRTU.buildFrame(ReadInputRegistersRequest)``;
- responses/s: our master hunting the frame out of a byte stream, then ``decode_block`` to
  Decimal quantities, against pymodbus ``FramerRTU.handleFrame`` giving bare register words.

Ratios > 1 mean ours is faster.  Run: ``.venv/bin/python bench/modbus_codec.py [seconds]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from decimal import Decimal

from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadInputRegistersRequest

from protocols.modbus.connection import ModbusMaster
from protocols.modbus.messages import NEED_DATA, ReadRegisters, RegistersResponse
from protocols.modbus.registers import decode_block, encode_values, load_map, plan_reads, read_image
from protocols.modbus.rtu import encode_response


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``func`` over about ``seconds``."""
    n, batch = 0, 64
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            func()
        n += batch
    return n / elapsed


def main(seconds: float) -> None:
    model = "SDM630"
    block = plan_reads(model)[0]
    meter = load_map(model)
    values = {r.quantity: Decimal(1) + r.resolution * 7 for r in meter.registers}
    words = tuple(read_image(encode_values(model, values), 4, block.address, block.count))
    response = RegistersResponse(1, 4, words)
    request = block.request(1)
    frame = ModbusMaster().send(request)
    reply = encode_response(response)
    framer = FramerRTU(DecodePDU(is_server=False))

    def ours_build() -> bytes:
        return ModbusMaster().send(ReadRegisters(1, 4, block.address, block.count))

    def pymodbus_build() -> bytes:
        return framer.buildFrame(
            ReadInputRegistersRequest(dev_id=1, address=block.address, count=block.count)
        )

    master = ModbusMaster()

    def ours_decode() -> int:
        master.pending = request
        master.receive_data(reply)
        event = master.next_event()
        assert event is not NEED_DATA and isinstance(event, RegistersResponse)
        return len(decode_block(model, 4, block.address, event.registers, block.quantities))

    def ours_frame_only() -> object:
        master.pending = request
        master.receive_data(reply)
        return master.next_event()

    def pymodbus_frame_only() -> object:
        _, pdu = framer.handleFrame(reply, 0, 0)
        return pdu.registers  # type: ignore[union-attr]

    assert ours_decode() == len(block.quantities) and frame
    quantities = len(block.quantities)
    build, build_base = rate(ours_build, seconds), rate(pymodbus_build, seconds)
    frame_rate, frame_base = rate(ours_frame_only, seconds), rate(pymodbus_frame_only, seconds)
    decode_rate = rate(ours_decode, seconds)
    rows = [
        ("requests built/s, ours", build),
        ("requests built/s, pymodbus buildFrame", build_base),
        ("responses framed/s, ours (stream hunt)", frame_rate),
        ("responses framed/s, pymodbus handleFrame", frame_base),
        ("responses decoded to quantities/s, ours", decode_rate),
        ("quantities decoded/s, ours", decode_rate * quantities),
    ]
    for name, value in rows:
        print(f"{name:<48} {value:>12,.0f}")
    print(f"{'ratio build, ours / pymodbus':<48} {build / build_base:>12.2f}")
    print(f"{'ratio framing, ours / pymodbus':<48} {frame_rate / frame_base:>12.2f}")
    print(f"{'ratio to quantities, ours / pymodbus framing':<48} {decode_rate / frame_base:>12.2f}")
    print(f"(response: {len(reply)} bytes, {block.count} registers, {quantities} quantities)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
