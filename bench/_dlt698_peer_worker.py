"""Worker for ``bench/dlt698_codec.py``: times one library's full decode and encode, prints JSON.

Run by the bench with each library's own interpreter (the PyPI ``dlt698`` binding lives in its
own venv).  Equal work for both libraries:

- full decode: wire bytes of a GET-Response (meter 202612060001, OAD 00100200, an array of five
  double-long-unsigned: 1234.56 kWh total) → frame (both CRCs checked) → APDU → the total as a
  number;
- encode: (address, OAD 00100200, PIID) → wire bytes of a GET-Request Normal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from _peers import worker_report

ADDRESS = "202612060001"
EXPECTED = 123456


# 68 L C3 05 <SA 01 00 06 12 26 20> 00 HCS 85 01 01 <OAD 00100200> 01 <array of 5 dlu> 00 00 FCS 16
REPLY = bytes.fromhex(
    "683400C30501000612262000D70985010100100200010105060001E24006000000010600000002"
    "0600000003060000000400009C0516"
)


def _taiqu() -> tuple[Callable[[], Any], Callable[[], bytes]]:
    from protocols.dlt698 import OAD, Client, decode_apdu, decode_frame

    oad = OAD(0x0010, 2)
    client = Client(preamble=0)

    def decode() -> Any:
        response = decode_apdu(decode_frame(REPLY).apdu)
        return response.result.data.value[0].value  # type: ignore[union-attr]

    def encode() -> bytes:
        return client.get(ADDRESS, oad)

    return decode, encode


def _peer() -> tuple[Callable[[], Any], Callable[[], bytes]]:
    from dlt698 import Oad, codec, protocol
    from dlt698._native import AddressType, ServerAddress

    server = ServerAddress(bytes=bytes.fromhex(ADDRESS)[::-1], logical=0, type=AddressType.single)
    oad = Oad(oi=0x0010, attribute=2)

    def decode() -> Any:
        response = codec.decode_apdu(codec.decode_frame(REPLY).payload)
        return response.attributes[0].result.value[0].as_uint32()

    def encode() -> bytes:
        request = protocol.GetRequest(attributes=[oad], piid=1)
        frame = protocol.Frame(
            control=0x43, server=server, client=0, payload=codec.encode_apdu(request)
        )
        return bytes(codec.encode_frame(frame))

    return decode, encode


def main() -> None:
    lib, seconds = sys.argv[1], float(sys.argv[2])
    decode, encode = _taiqu() if lib == "taiqu" else _peer()
    assert decode() == EXPECTED, decode()
    wire = encode()
    assert wire.endswith(b"\x16") and wire.lstrip(b"\xfe")[0] == 0x68
    worker_report(lib, decode, encode, seconds)


if __name__ == "__main__":
    main()
