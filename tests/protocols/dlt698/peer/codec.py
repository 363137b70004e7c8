"""Run by the PyPI ``dlt698`` peer's own interpreter: decode and re-encode APDUs.

Reads one hex APDU per line on stdin; prints one line each: ``ok``, ``diff HEX`` (re-encoded
differently) or ``error MESSAGE`` (the peer refused to decode it).
"""

import sys

from dlt698 import codec

for line in sys.stdin:
    raw = bytes.fromhex(line.strip())
    try:
        if raw[:1] in (b"\x10", b"\x90"):
            back = codec.encode_security(codec.decode_security(raw))
        else:
            back = codec.encode_apdu(codec.decode_apdu(raw))
        print("ok" if back == raw else f"diff {back.hex()}")
    except Exception as exc:
        print(f"error {type(exc).__name__}: {str(exc)[:200]}")
