"""bytes → APDU: the inverse of ``encoder.encode_apdu`` (DL/T 698.45-2017 clause 7.2).

``decode_apdu`` reads one whole APDU and rejects trailing bytes; every malformed input
(unknown tag or choice, truncation, bad OPTIONAL flag, impossible counts) raises
``Dlt698Error`` — the only exception it lets out.  One decoder per APDU tag: ``services``
(GET, SET, ACTION, REPORT, SECURITY, ERROR), ``association`` (LINK, CONNECT, RELEASE), the
pieces they share in ``parts``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from protocols.dlt698 import apdu as A
from protocols.dlt698.decoder.association import (
    dec_connect_request,
    dec_connect_response,
    dec_link_request,
    dec_link_response,
    dec_release_notification,
    dec_release_request,
    dec_release_response,
)
from protocols.dlt698.decoder.parts import Decoded
from protocols.dlt698.decoder.services import (
    dec_action_request,
    dec_action_response,
    dec_error_response,
    dec_get_request,
    dec_get_response,
    dec_report,
    dec_report_response,
    dec_security_request,
    dec_security_response,
    dec_set_request,
    dec_set_response,
)
from protocols.dlt698.errors import Dlt698Error

_DECODERS: dict[int, Callable[[bytes, int], Decoded]] = {
    A.Tag.GET_REQUEST: dec_get_request,
    A.Tag.GET_RESPONSE: dec_get_response,
    A.Tag.SET_REQUEST: dec_set_request,
    A.Tag.SET_RESPONSE: dec_set_response,
    A.Tag.ACTION_REQUEST: dec_action_request,
    A.Tag.ACTION_RESPONSE: dec_action_response,
    A.Tag.REPORT_NOTIFICATION: dec_report,
    A.Tag.REPORT_RESPONSE: dec_report_response,
    A.Tag.CONNECT_REQUEST: dec_connect_request,
    A.Tag.CONNECT_RESPONSE: dec_connect_response,
    A.Tag.RELEASE_REQUEST: dec_release_request,
    A.Tag.RELEASE_RESPONSE: dec_release_response,
    A.Tag.RELEASE_NOTIFICATION: dec_release_notification,
    A.Tag.LINK_REQUEST: dec_link_request,
    A.Tag.LINK_RESPONSE: dec_link_response,
    A.Tag.SECURITY_REQUEST: dec_security_request,
    A.Tag.SECURITY_RESPONSE: dec_security_response,
    A.Tag.ERROR_RESPONSE: dec_error_response,
}


def decode_apdu(raw: bytes) -> A.Apdu:
    """One whole APDU; ``Dlt698Error`` if malformed, truncated or followed by extra bytes."""
    if not raw:
        raise Dlt698Error("empty APDU")
    dec = _DECODERS.get(raw[0])
    if dec is None:
        raise Dlt698Error(f"APDU tag {raw[0]} is not supported")
    try:
        m, pos = dec(raw, 1)
    except (IndexError, struct.error):
        raise Dlt698Error(f"APDU truncated ({len(raw)} bytes)") from None
    if pos != len(raw):
        raise Dlt698Error(f"{len(raw) - pos} bytes after the APDU")
    return m


__all__ = ["decode_apdu"]
