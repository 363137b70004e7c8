"""Run by the PyPI ``dlt645`` package's own interpreter (its venv), never imported by Taiqu.

``client HOST PORT ADDRESS``: its ``MeterClientService`` reads a meter over TCP and prints one
JSON line with what it got.  ``server PORT ADDRESS``: its ``MeterServerService`` serves a meter
with known values over TCP (prints ``ready`` when listening) until killed.
"""

from __future__ import annotations

import json
import sys
import time

READS = {
    "energy.active.import.total": ("read_00", 0x00010000),
    "energy.active.export.total": ("read_00", 0x00020000),
    "voltage.a": ("read_02", 0x02010100),
    "current.a": ("read_02", 0x02020100),
    "power.active.total": ("read_02", 0x02030000),
    "frequency": ("read_02", 0x02800002),
}
SERVED = {0x00010000: 1234.56, 0x00020000: 7.89}
SERVED_02 = {0x02010100: 231.4, 0x02020100: 5.125, 0x02030000: 1.1844}


def client(host: str, port: int, address: str) -> None:
    from dlt645 import MeterClientService

    service = MeterClientService.new_tcp_client(host, port, timeout=2.0)
    service.set_address(address)
    out: dict[str, object] = {}
    for name, (method, di) in READS.items():
        item = getattr(service, method)(di)
        out[name] = None if item is None else item.value
    service.disconnect()
    print(json.dumps(out, default=str))


def server(port: int, address: str) -> None:
    from dlt645 import MeterServerService

    service = MeterServerService.new_tcp_server("127.0.0.1", port, 3.0)
    service.set_address(address)
    for di, value in SERVED.items():
        service.set_00(di, value)
    for di, value in SERVED_02.items():
        service.set_02(di, value)
    service.server.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        server(int(sys.argv[2]), sys.argv[3])
