"""The network adapter for a utility's encryption machine against a laboratory machine on a real
HTTP socket (``tests/headend/esam_stub.py``), speaking the documented protocol v1."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import pytest

from headend.esam import EncryptionRefused, EncryptionUnavailable, SessionInfo
from headend.esam.network import NetworkEncryptionService, make_service
from headend.esam.settings import EsamConfigError, EsamSettings
from headend.esam.settings import make_service as make_configured
from headend.esam.software import create_key_file, read_key_file
from protocols.dlt645 import DI_READBACK, LEVEL_SEALED
from protocols.esam import Session, control_header, meter_keys, reply_header, write_header
from simulators.meter import Relay
from tests.headend.esam_stub import LabMachine, running
from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401
from tests.headend.test_commands_secured import ESAM_METER, Rig, flag_esam

METER = "123456789012"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "esam.key"
    create_key_file(path)
    return path


@pytest.fixture
def machine(key_file):
    return LabMachine(key_file, token="t0ken")


@pytest.fixture
def url(machine):
    with running(machine) as base:
        yield base


def the_meters_session(key_file, info: SessionInfo) -> Session:
    """What the meter's ESAM derives from the same master key, after answering random 2."""
    keys = meter_keys(read_key_file(key_file), info.challenge.factor)
    return Session.derive(keys, info.challenge.random1, info.random2, info.esam_serial)


def test_every_operation_round_trips_through_the_machine(key_file, machine, url):
    service = NetworkEncryptionService(url, token="t0ken", timeout_s=2)
    challenge = service.authenticate(METER)
    assert challenge.factor == bytes.fromhex("0000" + METER)
    info = SessionInfo(challenge, bytes.fromhex("A1B2C3D4"), bytes.fromhex("ED00" + METER))
    meter = the_meters_session(key_file, info)
    sealed = service.seal_control(info, 0, 0x1A, datetime(2026, 3, 10, 10, 5))
    assert meter.open(0, control_header(METER), sealed) == bytes.fromhex("1A00260310100500")
    payload = service.seal_write(info, 1, 0x04000102, bytes.fromhex("563412"), LEVEL_SEALED)
    assert meter.open(1, write_header(METER, 0x04000102), payload) == bytes.fromhex("563412")
    header, data = reply_header(METER, DI_READBACK), bytes.fromhex("DF010008000000081A00")
    mac = meter.mac_of(1, header, data)
    assert service.verify_reply_mac(info, 1, header, data, mac) is True
    assert service.verify_reply_mac(info, 1, header, data, bytes(4)) is False
    assert machine.calls == [
        "authenticate", "seal-control", "seal-write", "verify-reply-mac", "verify-reply-mac"
    ]  # fmt: skip


def test_a_wrong_token_or_a_refusal_is_a_refusal(url):
    with pytest.raises(EncryptionRefused, match="unauthorised"):
        NetworkEncryptionService(url, token="wrong").authenticate(METER)
    with pytest.raises(EncryptionRefused, match="unknown_meter"):
        NetworkEncryptionService(url, token="t0ken").authenticate("12345")


@pytest.mark.parametrize("fault", ["500", "drop", "garbage", "stall"])
def test_a_failing_machine_is_unavailable_within_the_timeout(machine, url, fault):
    machine.fault, machine.stall_s = fault, 1.5
    service = NetworkEncryptionService(url, token="t0ken", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(EncryptionUnavailable):
        service.authenticate(METER)
    assert time.monotonic() - started < 1.2  # the dispatcher is never stalled by the machine


def test_an_unreachable_machine_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(EncryptionUnavailable):
        NetworkEncryptionService(f"http://127.0.0.1:{port}", timeout_s=0.5).authenticate(METER)


def test_configuration_token_file_and_production_mode(tmp_path, url):
    token = tmp_path / "hsm.token"
    token.write_text("t0ken\n")
    token.chmod(0o644)
    options = {"url": url, "token_file": str(token), "timeout_s": 1}
    with pytest.raises(EncryptionUnavailable, match="0600"):
        make_service(options)
    token.chmod(0o600)
    assert make_service(options).authenticate(METER).factor.hex().endswith(METER)
    adapter = "headend.esam.network:make_service"
    plain = EsamSettings(service="hsm", hsm_adapter=adapter, hsm=options)
    with pytest.raises(EsamConfigError, match="not production-ready"):
        make_configured(plain)  # plain HTTP: a laboratory stub, refused in production mode
    lab = EsamSettings(service="hsm", hsm_adapter=adapter, hsm=options, production=False)
    assert make_configured(lab).name.startswith("network http://127.0.0.1")
    tls = {"url": "https://hsm.utility.example:8443", "token_file": str(token)}
    service = make_configured(EsamSettings(service="hsm", hsm_adapter=adapter, hsm=tls))
    assert service.production_ready
    with pytest.raises(EsamConfigError, match="unknown"):
        make_configured(EsamSettings(service="hsm", hsm_adapter=adapter, hsm={"host": "x"}))


def test_a_secured_trip_through_the_network_machine(ops, key_file, machine, url):
    """The head-end's whole chain with the network adapter: authenticate, seal, verify the
    meter's reply MAC — three machine calls — and the relay opens."""
    flag_esam(ops)
    rig = Rig(ops, key_file, service=NetworkEncryptionService(url, token="t0ken"))
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle()
    assert rig.view(command_id)["targets"][0]["state"] == "executed"
    assert rig.gateway.meter.relay(ops.clock.now().timestamp()) is Relay.OPEN
    assert machine.calls == ["authenticate", "seal-control", "verify-reply-mac"]


def test_the_machine_failing_mid_flow_fails_the_target_and_switches_nothing(
    ops, key_file, machine, url
):
    flag_esam(ops)
    rig = Rig(ops, key_file, service=NetworkEncryptionService(url, token="t0ken", timeout_s=0.5))
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle(rounds=1)  # authenticated through the machine
    machine.fault = "500"  # then it fails before sealing
    rig.cycle(rounds=3)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "seal-control: HTTP 500" in target["reason"]
    assert rig.gateway.meter.relay(ops.clock.now().timestamp()) is Relay.CLOSED
