"""Worker for ``bench/dlt645_codec.py``: times one library's full decode and encode, prints JSON.

Run by the bench with each library's own interpreter (the PyPI packages ``dlt645`` and
``python-dlt645`` both install a module named ``dlt645``, so each lives in its own venv).
Equal work for every library:

- full decode: wire bytes of a read reply (4 FE wake-up bytes, meter 123456789012, DI 00010000,
  1234.56 kWh) → frame → identifier → numeric value;
- encode: (address, DI 00010000) → wire bytes of a read request.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from _peers import worker_report

REPLY = bytes.fromhex("FEFEFEFE681290785634126891083333343389674533" + "5416")
REQUEST = bytes.fromhex("FEFEFEFE68129078563412681104333334336816")
ADDRESS = "123456789012"
DI = 0x00010000
EXPECTED = 1234.56


def _taiqu() -> tuple[Callable[[], Any], Callable[[], bytes]]:
    from protocols.dlt645 import ReadData, decode_frame, decode_reply, encode_frame, encode_request

    def decode() -> Any:
        return decode_reply(decode_frame(REPLY)).values["energy.active.import.total"]  # type: ignore[union-attr]

    request = ReadData(ADDRESS, DI)

    def encode() -> bytes:
        return encode_frame(encode_request(request))

    return decode, encode


def _dlt645() -> tuple[Callable[[], Any], Callable[[], bytes]]:
    import struct

    from dlt645 import DLT645Protocol, MeterClientService
    from dlt645.model.types.dlt645_type import CtrlCode

    service = MeterClientService(None)  # type: ignore[arg-type,unused-ignore]  # no transport: decode only
    service.address = bytearray(bytes.fromhex(ADDRESS)[::-1])

    def decode() -> Any:
        return service.handle_response(DLT645Protocol.deserialize(REPLY)).value

    def encode() -> bytes:
        addr = bytes.fromhex(ADDRESS)[::-1]
        return bytes(DLT645Protocol.build_frame(addr, CtrlCode.ReadData, struct.pack("<I", DI)))

    return decode, encode


def _python_dlt645() -> tuple[Callable[[], Any], Callable[[], bytes]]:
    import io

    import dlt645

    def decode() -> Any:
        frame = dlt645.read_frame(dlt645.iogen(io.BytesIO(REPLY)))
        if frame.data[-8:] != "00010000":  # the library's own get_active_energy() check
            raise ValueError("wrong identifier")
        return int(frame.data[:-8]) / 100

    def encode() -> bytes:
        frame = dlt645.Frame(ADDRESS)
        frame.data = "00010000"
        return b"\xfe" * 4 + bytes(frame.dump())

    return decode, encode


LIBS = {"taiqu": _taiqu, "dlt645": _dlt645, "python-dlt645": _python_dlt645}


def main() -> None:
    lib, seconds = sys.argv[1], float(sys.argv[2])
    decode, encode = LIBS[lib]()
    value = decode()
    if abs(float(value) - EXPECTED) > 1e-9:
        raise SystemExit(f"{lib}: decoded {value!r}, expected {EXPECTED}")
    if encode() != REQUEST:
        raise SystemExit(f"{lib}: encoded {encode().hex(' ')}, expected {REQUEST.hex(' ')}")
    worker_report(lib, decode, encode, seconds)


if __name__ == "__main__":
    main()
