"""Run by the PyPI ``dlt698`` peer's own interpreter: read one meter over TCP, print JSON.

Usage: client.py HOST PORT ADDRESS(12 digits, nameplate order)
"""

import json
import sys

from dlt698 import Client, ClientOptions, ConnectionProfile, Oad, SessionOptions
from dlt698._native import AddressType, ServerAddress

host, port, address = sys.argv[1], int(sys.argv[2]), sys.argv[3]
wire = bytes.fromhex(address)[::-1]  # the SA travels least significant byte first
options = ClientOptions(
    protocol=SessionOptions(
        server=ServerAddress(bytes=wire, logical=0, type=AddressType.single), request_timeout=5.0
    )
)
out: dict[str, object] = {}
with Client(options) as client:
    client.connect_tcp(host, port, ConnectionProfile.local_public)
    for name, oi in (("energy", 0x0010), ("clock", 0x4000), ("address", 0x4001)):
        result = client.get(Oad(oi=oi, attribute=2))
        if result.data is None:
            out[name] = {"dar": result.dar}
            continue
        data = result.data
        if name == "energy":
            out[name] = [item.as_uint32() for item in data.value]
        elif name == "clock":
            out[name] = list(data.as_date_time_s())
        else:
            out[name] = data.as_octet_string().hex()
print(json.dumps(out))
