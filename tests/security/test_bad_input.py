"""Bad input never raises anything but the codec's typed error (≈1,000 hypothesis examples each).

The targets are shared with the atheris fuzzers (``bench/fuzz_codecs.py``): random bytes and
mutations of golden frames and fixture messages (bit flips, insertions, deletions, truncation,
splices), through DL/T 645 frame and stream decoding, Modbus frames and register blocks, MQTT
payload decoding and the gateway's command decoding plus signature check.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.signature import Refusal, SignatureVerifier, TrustedKey
from protocols.dlt645 import Dlt645Error, decode_frame
from protocols.modbus.errors import ModbusError
from protocols.modbus.rtu import crc16
from protocols.modbus.rtu import decode_frame as modbus_decode_frame
from protocols.uplink import Command, decode, encode
from taiqu.clock import ManualClock
from tests.security.fuzz_targets import (
    KEY_ID,
    KNOWN,
    NOW,
    SIGNING_KEY,
    TARGETS,
    Target,
    _command_bodies,
    _State,
    sign,
)

EXAMPLES = 1000
OPS = ("flip", "set", "insert", "delete", "truncate", "splice")


def apply(seed: bytes, edits: list[tuple[str, int, int]], other: bytes) -> bytes:
    data = bytearray(seed)
    for op, where, value in edits:
        i = where % (len(data) + 1)
        if op == "flip" and data:
            data[i % len(data)] ^= 1 << (value % 8)
        elif op == "set" and data:
            data[i % len(data)] = value
        elif op == "insert":
            data[i:i] = bytes([value])
        elif op == "delete" and data:
            del data[i % len(data)]
        elif op == "truncate":
            del data[i:]
        elif op == "splice":
            data[i:] = other[value % (len(other) + 1) :]
    return bytes(data)


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    seeds = target.seeds()
    edits = st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6
    )
    mutated = st.builds(apply, st.sampled_from(seeds), edits, st.sampled_from(seeds))
    return st.one_of(mutated, mutated, st.binary(max_size=400))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_only_typed_errors(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES,
        report_multiple_bugs=False,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(inputs(target))
    def run(data: bytes) -> None:
        try:
            target.run(data)
        except target.allowed + KNOWN.get(name, ()):
            pass

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_exercise_the_decoders(name: str) -> None:
    """The corpus is not vacuous: most seeds decode without error."""
    target, ok = TARGETS[name], 0
    for data in target.seeds():
        try:
            target.run(data)
            ok += 1
        except target.allowed:
            pass
    assert ok >= len(target.seeds()) // 2


@pytest.mark.parametrize("raw", ["68 00 00 00 00 00 00 68", "68 00 00 00 00 00 00 68 11"])
def test_short_frame_is_a_typed_error(raw: str) -> None:
    with pytest.raises(Dlt645Error):
        decode_frame(bytes.fromhex(raw))


def test_exception_bit_with_function_zero_is_a_remote_error() -> None:
    frame = bytes.fromhex("08 80 3b")
    with pytest.raises(ModbusError):
        modbus_decode_frame(frame + crc16(frame))


def test_every_signed_seed_is_accepted_and_every_unsigned_refused() -> None:
    trust = {KEY_ID: TrustedKey(KEY_ID, SIGNING_KEY.public_key())}
    verdicts = []
    for body in _command_bodies():
        command = Command.model_validate(body)
        for candidate in (command, sign(command)):
            received = decode(encode(candidate), Command)
            verify = SignatureVerifier(trust, _State(), ManualClock(NOW))
            verdicts.append((candidate.signature is not None, verify.check(received)))
    assert {reason for signed, reason in verdicts if signed} == {None}
    assert {reason for signed, reason in verdicts if not signed} == {Refusal.UNSIGNED}
