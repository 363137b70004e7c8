"""RFC 2217 against plain TCP on a simulated bus: open, one read, one line-settings switch.

Usage: ``.venv/bin/python bench/sim_rfc2217.py [--reads N]``.  One meter at 2400 8E1 with real
wire pacing (50 ms response delay); the same DL/T 645 energy read through pyserial's
``socket://`` client (the baseline, same run) and its ``rfc2217://`` client; then the cost of a
settings switch (baud 9600 and back, each acknowledged by the server), the price a gateway pays
when consecutive meters on one bus need other settings.  Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import warnings

import serial

from protocols.dlt645 import NEED_DATA, Master, ReadData
from simulators.config import quick_config
from simulators.fleet import start_fleet

ADDRESS = "202611240001"


def _read(port: serial.SerialBase) -> None:
    master = Master()
    port.write(master.send(ReadData(ADDRESS, 0x00010000)))
    end = time.monotonic() + 3
    while time.monotonic() < end:
        chunk = port.read(256)
        if chunk:
            master.receive_data(chunk)
            if master.next_event() is not NEED_DATA:
                return
    raise RuntimeError("no reply")


def measure(url: str, reads: int) -> dict[str, float]:
    started = time.monotonic()
    port = serial.serial_for_url(url, baudrate=2400, parity="E", timeout=0.005)
    opened = time.monotonic() - started
    read_s, switch_s = [], []
    try:
        for _ in range(reads):
            t = time.monotonic()
            _read(port)
            read_s.append(time.monotonic() - t)
            t = time.monotonic()
            port.baudrate = 9600
            port.baudrate = 2400
            switch_s.append((time.monotonic() - t) / 2)
    finally:
        port.close()
    return {
        "open_ms": opened * 1000,
        "read_p50_ms": statistics.median(read_s) * 1000,
        "switch_p50_ms": statistics.median(switch_s) * 1000,
    }


async def main(reads: int) -> None:
    warnings.simplefilter("ignore", DeprecationWarning)  # pyserial's RFC 2217 thread naming
    async with start_fleet(quick_config(meters=1)) as fleet:
        tcp = await asyncio.to_thread(measure, fleet.endpoints["bus1"], reads)
        rfc = await asyncio.to_thread(measure, fleet.rfc2217["bus1"], reads)
    for name, row in (("socket://", tcp), ("rfc2217://", rfc)):
        print(f"{name:<11} " + "  ".join(f"{k} {v:8.1f}" for k, v in row.items()))
    print(f"rfc2217 read / socket read      {rfc['read_p50_ms'] / tcp['read_p50_ms']:.2f}")
    print(f"rfc2217 switch / socket read    {rfc['switch_p50_ms'] / tcp['read_p50_ms']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=15)
    asyncio.run(main(parser.parse_args().reads))
