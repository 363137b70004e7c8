"""The gateway's side of the secured chain for an ESAM meter: steps in, meter frames out.

The test plays the head-end with its laboratory encryption service; the meter is the
simulator's meter with a software ESAM sharing only the laboratory key file.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from headend.esam import SessionInfo
from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
from protocols.dlt645 import DI_READBACK, ControlAction, SecuredControl
from protocols.esam import reply_header
from protocols.uplink.messages import CommandAction, CommandState
from protocols.uplink.secured import AuthenticateStep, ControlStep, step_params
from simulators.esam import SoftwareEsam
from simulators.meter import Relay
from tests.gateway.commands.test_commands import ADDRESSES, Bench, command

METER = ADDRESSES[0]


class EsamBench(Bench):
    def __init__(self, tmp_path) -> None:
        super().__init__(tmp_path)
        key = tmp_path / "esam.key"
        create_key_file(key)
        self.service = SoftwareEncryptionService(key)
        self.esam = SoftwareEsam(read_key_file(key), METER)
        self.listener.add_esam(self.esam)

    def result(self, command_id: str):
        return [r for r in self.results if r.id == command_id and r.meter == METER][-1]

    async def authenticate(self, action: CommandAction) -> tuple[SessionInfo, object]:
        challenge = self.service.authenticate(METER)
        step = AuthenticateStep(
            session="ab12cd34",
            factor=challenge.factor.hex().upper(),
            random1=challenge.random1.hex().upper(),
            ciphertext1=challenge.ciphertext1.hex().upper(),
        )
        cmd = command(action, params=step_params(step), now=self.clock.now())
        state = await self.executor.handle(cmd)
        result = self.result(cmd.id)
        report = result.detail["esam"]
        assert state is CommandState.EXECUTED, result
        session = SessionInfo(
            challenge, bytes.fromhex(report["random2"]), bytes.fromhex(report["esam_serial"])
        )
        return session, result

    def control_step(self, session: SessionInfo, action: ControlAction, seconds: int = 300):
        meter_now = self.meters[METER].meter_time(self.ts()).replace(microsecond=0)
        until = meter_now + timedelta(seconds=seconds)
        sealed = self.service.seal_control(session, 0, int(action), until)
        return ControlStep(
            session="ab12cd34",
            session_until=self.clock.now() + timedelta(seconds=seconds),
            sealed=sealed.hex().upper(),
        )


@pytest.fixture
def bench(tmp_path) -> EsamBench:
    return EsamBench(tmp_path)


async def test_an_esam_meter_trips_through_authentication_and_a_sealed_control(bench) -> None:
    session, auth = await bench.authenticate(CommandAction.RELAY_TRIP)
    assert (
        auth.detail["esam"]["step"] == "authenticate" and len(auth.detail["esam"]["random2"]) == 8
    )
    step = bench.control_step(session, ControlAction.TRIP)
    cmd = command(CommandAction.RELAY_TRIP, params=step_params(step), now=bench.clock.now())
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    assert bench.relay(METER) is Relay.OPEN
    done = bench.result(cmd.id)
    assert done.detail["relay"] == "open" and done.detail["esam"]["outcome"] == "accepted"
    assert any(isinstance(r, SecuredControl) for r in bench.sent)
    assert [e.kind for e in bench.esam.log] == ["authenticate", "control"]


async def test_plaintext_control_to_an_esam_meter_is_refused_and_nothing_switches(bench) -> None:
    cmd = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    assert bench.relay(METER) is Relay.CLOSED


async def test_a_step_arriving_after_its_session_sends_nothing_to_the_meter(bench) -> None:
    session, _ = await bench.authenticate(CommandAction.RELAY_TRIP)
    step = bench.control_step(session, ControlAction.TRIP, seconds=30)
    bench.clock.advance(60)
    sent = len(bench.sent)
    cmd = command(CommandAction.RELAY_TRIP, params=step_params(step), now=bench.clock.now())
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    assert bench.result(cmd.id).detail["esam"]["outcome"] == "late"
    assert len(bench.sent) == sent and bench.relay(METER) is Relay.CLOSED


async def test_a_forged_seal_is_refused_by_the_meter_and_reported(bench) -> None:
    session, _ = await bench.authenticate(CommandAction.RELAY_TRIP)
    step = bench.control_step(session, ControlAction.TRIP)
    forged = step.model_copy(update={"sealed": ("00" * 20)})
    cmd = command(CommandAction.RELAY_TRIP, params=step_params(forged), now=bench.clock.now())
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    report = bench.result(cmd.id).detail["esam"]
    assert report["outcome"] == "refused" and report["reasons"]
    assert bench.relay(METER) is Relay.CLOSED


async def test_a_malformed_step_is_refused_before_the_bus(bench) -> None:
    cmd = command(CommandAction.RELAY_TRIP, params={"esam": {"step": "control"}})
    assert await bench.executor.handle(cmd) is CommandState.REFUSED
    assert bench.sent == []


async def test_the_gateway_reads_the_esam_back_after_the_control_and_reports_its_mac(bench) -> None:
    session, _ = await bench.authenticate(CommandAction.RELAY_TRIP)
    step = bench.control_step(session, ControlAction.TRIP)
    step = step.model_copy(update={"readback": "DF01000800000008"})
    cmd = command(CommandAction.RELAY_TRIP, params=step_params(step), now=bench.clock.now())
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    sent = [type(r).__name__ for r in bench.sent]
    assert sent.index("SecuredControl") < sent.index("ReadBack")  # right after the control
    readback = bench.result(cmd.id).detail["esam"]["readback"]
    assert readback["identifier"] == "DF01000800000008" and readback["data"].startswith("1A00")
    header = reply_header(METER, DI_READBACK)
    data = bytes.fromhex(readback["identifier"] + readback["data"])
    mac = bytes.fromhex(readback["mac"])
    assert bench.service.verify_reply_mac(session, 1, header, data, mac)  # the head-end's check
    assert bench.relay(METER) is Relay.OPEN
