"""ESAM meters from the fleet file: ``esam = true`` rows and ``[esam] key_file``.

The fleet's software ESAMs share nothing with the head-end's laboratory service but the key
file, so a trip sealed by that service switches the fleet's ESAM meter and plaintext does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from headend.esam import SessionInfo
from headend.esam.software import SoftwareEncryptionService, create_key_file
from protocols.dlt645 import (
    NEED_DATA,
    AbnormalReply,
    Authenticate,
    Authenticated,
    ControlAck,
    ControlAction,
    Master,
    RemoteControl,
    Reply,
    Request,
    SecuredControl,
)
from simulators.config import load_config, parse_config
from simulators.dlt645.meter import Dlt645Listener
from simulators.errors import ControlError, SimConfigError
from simulators.fleet import Fleet

ESAM, PLAIN = "202603100001", "202603100002"
START = datetime(2026, 3, 10, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def doc(key_file: Path | None, **row: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "clock": {"start": START, "factor": 1},
        "buses": [{"name": "bus1", "pace": False}],
        "meters": [
            {"bus": "bus1", "address": ESAM, "esam": True} | row,
            {"bus": "bus1", "address": PLAIN},
        ],
    }
    if key_file is not None:
        data["esam"] = {"key_file": str(key_file), "window_s": 120}
    return data


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "esam.key"
    create_key_file(path)  # what `taiqu headend esam-lab-key` writes
    return path


class Wire:
    """A codec master on the fleet's DL/T 645 listener of bus1."""

    def __init__(self, fleet: Fleet) -> None:
        [listener] = [x for x in fleet.buses["bus1"].listeners if isinstance(x, Dlt645Listener)]
        self.listener, self.fleet, self.master = listener, fleet, Master(preamble=0)

    def ask(self, request: Request) -> Reply:
        ts = self.fleet.clock.now().timestamp()
        [answer] = self.listener.feed(self.master.send(request), ts)
        self.master.receive_data(answer.data)
        reply = self.master.next_event()
        assert reply is not NEED_DATA
        return reply


def test_an_esam_row_gets_the_key_files_esam_and_refuses_plaintext(key_file: Path) -> None:
    fleet = Fleet(parse_config(doc(key_file)))
    assert set(fleet.esams) == {ESAM} and fleet.esams[ESAM].window == 120
    wire = Wire(fleet)
    until = fleet.meters[ESAM].meter_time(fleet.now().timestamp()) + timedelta(minutes=5)
    trip = RemoteControl(ESAM, ControlAction.TRIP, valid_until=until)
    assert isinstance(wire.ask(trip), AbnormalReply)
    assert fleet.control.relay(ESAM)["relay"] == "closed"
    plain = RemoteControl(PLAIN, ControlAction.TRIP, valid_until=until)
    assert isinstance(wire.ask(plain), ControlAck)  # the ordinary meter still takes plaintext

    service = SoftwareEncryptionService(key_file)  # the head-end's side: only the key file shared
    challenge = service.authenticate(ESAM)
    reply = wire.ask(Authenticate(ESAM, challenge.ciphertext1, challenge.random1, challenge.factor))
    assert isinstance(reply, Authenticated), reply
    session = SessionInfo(challenge, reply.random2, reply.esam_serial)
    sealed = service.seal_control(session, 0, int(ControlAction.TRIP), until)
    assert isinstance(wire.ask(SecuredControl(ESAM, sealed)), ControlAck)
    assert fleet.control.relay(ESAM)["relay"] == "open"

    truth = fleet.control.call("esam", {"meter": ESAM})
    assert [(e["kind"], e["accepted"]) for e in truth["log"]] == [
        ("plaintext_control", False),
        ("authenticate", True),
        ("control", True),
    ]
    assert truth["session_open"] is True
    with pytest.raises(ControlError, match="no ESAM"):
        fleet.control.esam(PLAIN)


def test_a_different_key_file_does_not_authenticate(key_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    create_key_file(other)
    fleet = Fleet(parse_config(doc(other)))
    challenge = SoftwareEncryptionService(key_file).authenticate(ESAM)
    reply = Wire(fleet).ask(
        Authenticate(ESAM, challenge.ciphertext1, challenge.random1, challenge.factor)
    )
    assert isinstance(reply, AbnormalReply)
    assert fleet.esams[ESAM].log[-1].reason == "ciphertext 1 does not verify"


def test_esam_rows_need_the_key_file_and_a_2007_meter(key_file: Path) -> None:
    with pytest.raises(SimConfigError, match=r"esam = true needs \[esam\] key_file"):
        parse_config(doc(None))
    with pytest.raises(SimConfigError, match="only DL/T 645-2007 meters have an ESAM"):
        parse_config(doc(key_file, protocol="dlt645-1997"))


def test_the_key_file_must_be_private_and_well_formed(key_file: Path, tmp_path: Path) -> None:
    key_file.chmod(0o644)
    with pytest.raises(SimConfigError, match="must be 0600"):
        Fleet(parse_config(doc(key_file)))
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    bad.chmod(0o600)
    with pytest.raises(SimConfigError, match="32 hex digits"):
        Fleet(parse_config(doc(bad)))
    with pytest.raises(SimConfigError, match=r"esam\.key_file"):
        Fleet(parse_config(doc(tmp_path / "missing.key")))


def test_a_relative_key_file_is_next_to_the_fleet_file(key_file: Path, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        '[[buses]]\nname = "bus1"\n\n[esam]\nkey_file = "esam.key"\n\n'
        f'[[meters]]\nbus = "bus1"\naddress = "{ESAM}"\nesam = true\n'
    )
    config = load_config(fleet_file)
    assert config.esam is not None and config.esam.key_file == key_file
    assert set(Fleet(config).esams) == {ESAM}
