"""The head-end's encryption service: the laboratory implementation and the production refusal."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from headend.esam import EncryptionRefused, EncryptionUnavailable, SessionInfo
from headend.esam.service import control_plaintext
from headend.esam.settings import EsamConfigError, EsamSettings, make_service, service_of
from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
from protocols.dlt645 import LEVEL_MAC, LEVEL_SEALED
from protocols.esam import Session, control_header, meter_keys, write_header

METER = "123456789012"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "esam.key"
    create_key_file(path)
    return path


@pytest.fixture
def service(key_file):
    return SoftwareEncryptionService(key_file)


def meter_session(key_file, info: SessionInfo) -> Session:
    """What the meter's ESAM derives, from the same master key (the laboratory's shared secret)."""
    keys = meter_keys(read_key_file(key_file), info.challenge.factor)
    return Session.derive(keys, info.challenge.random1, info.random2, info.esam_serial)


def test_key_file_is_created_owner_only_and_never_overwritten(key_file):
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(read_key_file(key_file)) == 16
    with pytest.raises(FileExistsError):
        create_key_file(key_file)


def test_loose_missing_or_malformed_key_files_are_refused(tmp_path, key_file):
    key_file.chmod(0o644)
    with pytest.raises(EncryptionUnavailable, match="0600"):
        SoftwareEncryptionService(key_file)
    with pytest.raises(EncryptionUnavailable):
        SoftwareEncryptionService(tmp_path / "absent.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex")
    bad.chmod(0o600)
    with pytest.raises(EncryptionUnavailable, match="32 hex"):
        SoftwareEncryptionService(bad)


def test_the_software_service_says_it_is_not_for_production(key_file, caplog):
    with caplog.at_level(logging.WARNING):
        service = SoftwareEncryptionService(key_file)
    assert service.production_ready is False
    assert "NOT FOR PRODUCTION" in caplog.text
    assert read_key_file(key_file).hex() not in caplog.text


def test_challenges_are_fresh_and_diversified_by_meter(service):
    a, b = service.authenticate(METER), service.authenticate(METER)
    assert a.factor == bytes.fromhex("0000123456789012")
    assert a.random1 != b.random1 and a.ciphertext1 != b.ciphertext1
    assert len(a.ciphertext1) == len(a.random1) == 8
    with pytest.raises(EncryptionRefused):
        service.authenticate("12345678901")


def test_sealed_control_opens_in_the_meters_session(service, key_file):
    info = SessionInfo(service.authenticate(METER), b"\x01\x02\x03\x04", bytes(range(8)))
    until = datetime(2026, 3, 1, 12, 5, 0)
    sealed = service.seal_control(info, 0, 0x1A, until)
    assert len(sealed) == 20
    plain = meter_session(key_file, info).open(0, control_header(METER), sealed)
    assert plain == control_plaintext(0x1A, until) == bytes.fromhex("1A00260301120500")


def test_parameter_writes_level_99_and_98(service, key_file):
    info = SessionInfo(service.authenticate(METER), b"\x01\x02\x03\x04", bytes(range(8)))
    meter = meter_session(key_file, info)
    header = write_header(METER, 0x04000102)
    value = bytes.fromhex("563412")
    payload = service.seal_write(info, 1, 0x04000102, value, LEVEL_MAC)
    assert payload[:-4] == value
    meter.verify(1, header, value, payload[-4:])
    sealed = service.seal_write(info, 2, 0x04000102, value, LEVEL_SEALED)
    assert meter.open(2, header, sealed) == value
    with pytest.raises(EncryptionRefused):
        service.seal_write(info, 3, 0x04000102, value, 0x02)


def test_reply_mac_verification(service, key_file):
    info = SessionInfo(service.authenticate(METER), b"\x01\x02\x03\x04", bytes(range(8)))
    mac = meter_session(key_file, info).mac_of(4, b"hdr", b"data")
    assert service.verify_reply_mac(info, 4, b"hdr", b"data", mac)
    assert not service.verify_reply_mac(info, 4, b"hdr", b"dat4", mac)


def test_production_mode_refuses_the_software_service(key_file):
    with pytest.raises(EsamConfigError, match="production"):
        make_service(EsamSettings(service="software", key_file=key_file))
    lab = make_service(EsamSettings(service="software", key_file=key_file, production=False))
    assert lab.name == "software"
    assert service_of({}) is None
    with pytest.raises(EsamConfigError, match=r"esam\.session_seconds"):
        service_of({"esam": {"session_seconds": 5}})


class _Hsm:
    name = "test-hsm"
    production_ready = False

    def __init__(self, options):
        self.options = options


def make_hsm(options):
    return _Hsm(options)


def test_an_hsm_adapter_is_loaded_by_name_and_must_be_production_ready():
    settings = EsamSettings(service="hsm", hsm_adapter=f"{__name__}:make_hsm", hsm={"host": "x"})
    with pytest.raises(EsamConfigError, match="not production-ready"):
        make_service(settings)
    service = make_service(settings.model_copy(update={"production": False}))
    assert service.options == {"host": "x"}
    with pytest.raises(EsamConfigError, match="hsm_adapter"):
        make_service(EsamSettings(service="hsm", hsm_adapter="no_such_module:f"))


def test_headend_refuses_to_start_workers_with_the_lab_service_in_production(tmp_path, key_file):
    from headend.app import create_app
    from headend.config import Settings

    settings = Settings(
        extra={
            "security": {"sign_commands": False},
            "esam": {"service": "software", "key_file": str(key_file)},
        }
    )
    with pytest.raises(EsamConfigError, match="production"):
        create_app(settings, workers=True)


def test_cli_creates_the_lab_key_once(tmp_path):
    from typer.testing import CliRunner

    from headend.cli import app

    path = tmp_path / "lab.key"
    runner = CliRunner()
    first = runner.invoke(app, ["esam-lab-key", str(path)])
    assert first.exit_code == 0 and "NOT FOR PRODUCTION" in first.output
    assert path.stat().st_mode & 0o777 == 0o600 and len(read_key_file(path)) == 16
    again = runner.invoke(app, ["esam-lab-key", str(path)])
    assert again.exit_code != 0 and len(read_key_file(path)) == 16
