"""Run by the PyPI ``dlt698`` peer's own interpreter: serve one meter over TCP.

Usage: server.py ADDRESS ENERGY(5 comma-separated raw values) YYYY-MM-DDTHH:MM:SS
Prints the TCP port, then serves until stdin closes.
"""

import sys
from datetime import datetime

from dlt698 import ConnectionProfile, Data, Oad, Server, ServerOptions, SessionOptions
from dlt698._native import AddressType, ServerAddress

address, energy, clock = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
wire = bytes.fromhex(address)[::-1]
options = ServerOptions(
    protocol=SessionOptions(server=ServerAddress(bytes=wire, logical=0, type=AddressType.single))
)
with Server(options=options) as server:
    server.set(
        Oad(oi=0x0010, attribute=2),
        Data.array([Data.uint32(int(v)) for v in energy.split(",")]),
    )
    server.set(
        Oad(oi=0x4000, attribute=2),
        Data.date_time_s(
            [
                clock.year >> 8,
                clock.year & 0xFF,
                clock.month,
                clock.day,
                clock.hour,
                clock.minute,
                clock.second,
            ]
        ),
    )
    server.set(Oad(oi=0x4001, attribute=2), Data.octet_string(bytes.fromhex(address)))
    server.start_tcp("127.0.0.1", 0, ConnectionProfile.local_public)
    print(server.local_port, flush=True)
    sys.stdin.read()
