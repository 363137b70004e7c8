"""Every MQTT payload is bounded at 16 MiB, compressed or not (issue 19: a 60 MB uncompressed
payload was parsed whole)."""

from __future__ import annotations

import zlib

import pytest

from protocols.errors import ContractError
from protocols.uplink import Status, decode
from protocols.uplink.codec import MAX_PAYLOAD


def test_an_uncompressed_payload_over_the_limit_is_refused_before_parsing():
    payload = b'{"v":1,"gw":"gw-1","state":"online","pad":"' + b"x" * MAX_PAYLOAD + b'"}'
    with pytest.raises(ContractError, match="over"):
        decode(payload, Status)


def test_a_compressed_payload_inflating_over_the_limit_is_refused():
    bomb = zlib.compress(b'{"v":1,' + b" " * (MAX_PAYLOAD + 10) + b"}", 9)
    assert len(bomb) < MAX_PAYLOAD
    with pytest.raises(ContractError, match="inflates beyond"):
        decode(bomb, Status)


def test_a_payload_at_the_limit_is_still_decoded():
    head = b'{"v":1,"gw":"gw-1","state":"online"'
    payload = head + b" " * (MAX_PAYLOAD - len(head) - 1) + b"}"
    assert len(payload) == MAX_PAYLOAD
    assert decode(payload, Status).gateway == "gw-1"
