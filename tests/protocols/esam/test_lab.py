"""The laboratory ESAM scheme: SM4 known answer, diversification, sealing, MAC binding."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocols.esam import (
    LabCryptoError,
    LabKeyError,
    Session,
    authentication_ciphertext,
    control_header,
    meter_keys,
    parse_master_key,
    write_header,
)

MASTER = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
F1 = bytes.fromhex("0000123456789012")
F2 = bytes.fromhex("0000123456789013")
R1, R2, SERIAL = bytes(range(8)), b"\x0a\x0b\x0c\x0d", bytes(range(10, 18))


def test_sm4_known_answer_gbt_32907():
    # GB/T 32907-2016 appendix A, example 1 (key = plaintext = 0123456789ABCDEFFEDCBA9876543210)
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert enc.update(key) + enc.finalize() == bytes.fromhex("681edf34d206965e86b3e94f536e4246")


def test_diversification_separates_meters_and_master_keys():
    a, b = meter_keys(MASTER, F1), meter_keys(MASTER, F2)
    other = meter_keys(bytes(16), F1)
    assert len({a.auth, a.enc, a.mac, b.auth, other.auth}) == 5
    assert authentication_ciphertext(a, R1) != authentication_ciphertext(b, R1)
    assert authentication_ciphertext(a, R1) == authentication_ciphertext(meter_keys(MASTER, F1), R1)
    assert "auth" not in repr(a) and a.auth.hex() not in repr(a)


def test_sealed_control_is_20_bytes_and_opens_only_with_its_session_and_sequence():
    keys = meter_keys(MASTER, F1)
    session = Session.derive(keys, R1, R2, SERIAL)
    header = control_header("123456789012")
    sealed = session.seal(0, header, bytes.fromhex("1A00260101120000"))
    assert len(sealed) == 20
    assert session.open(0, header, sealed) == bytes.fromhex("1A00260101120000")
    with pytest.raises(LabCryptoError):
        session.open(1, header, sealed)  # replayed as a later frame of the session
    with pytest.raises(LabCryptoError):
        Session.derive(keys, R1, b"\x00\x0b\x0c\x0d", SERIAL).open(0, header, sealed)
    with pytest.raises(LabCryptoError):
        session.open(0, control_header("123456789013"), sealed)  # another meter
    forged = sealed[:-1] + bytes((sealed[-1] ^ 1,))
    with pytest.raises(LabCryptoError):
        session.open(0, header, forged)


def test_write_mac_binds_the_identifier():
    session = Session.derive(meter_keys(MASTER, F1), R1, R2, SERIAL)
    value = bytes.fromhex("302010")
    mac = session.mac_of(0, write_header("123456789012", 0x04000102), value)
    session.verify(0, write_header("123456789012", 0x04000102), value, mac)
    with pytest.raises(LabCryptoError):
        session.verify(0, write_header("123456789012", 0x04000101), value, mac)


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17)])
def test_wrong_sizes_are_typed_errors(bad):
    with pytest.raises(LabCryptoError):
        meter_keys(bad, F1)


@pytest.mark.parametrize("mode", [0o100600, 0o100400, 0o600])
def test_an_owner_only_key_file_of_32_hex_digits_is_the_master_key(mode):
    assert parse_master_key(MASTER.hex().upper() + "\n", mode, "k") == MASTER


@pytest.mark.parametrize("mode", [0o100640, 0o100604, 0o100660, 0o100610])
def test_a_key_file_others_may_touch_is_refused_with_the_fix(mode):
    with pytest.raises(LabKeyError, match=r"^must be 0600 \(chmod 600 /etc/k\)$"):
        parse_master_key(MASTER.hex(), mode, "/etc/k")


@pytest.mark.parametrize("text", ["", "not hex", MASTER.hex()[:-2], MASTER.hex() + "00"])
def test_a_key_file_without_16_bytes_of_hex_is_refused(text):
    with pytest.raises(LabKeyError, match=r"^must hold 32 hex digits$"):
        parse_master_key(text, 0o100600, "k")
