"""The secured flow for ESAM meters, head-end side, against a simulated ESAM meter (no MQTT).

The head-end is real (API, dispatcher, ingest's result handler, SQLite and PostgreSQL); the
gateway is the few lines a gateway executor needs (``step_requests`` → bus → ``step_report``),
and the meter is the simulator's DL/T 645 listener with a software ESAM sharing only the
laboratory key file with the head-end's software encryption service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from headend.commands.dispatcher import Dispatcher
from headend.commands.ingest import on_result
from headend.commands.settings import CommandSettings, FlowSettings
from headend.db import writing
from headend.db.ops_tables import audit_log, esam_steps
from headend.db.tables import meters
from headend.esam import EncryptionUnavailable
from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
from headend.guards import GuardSettings
from protocols.dlt645 import (
    NEED_DATA,
    AbnormalReply,
    Master,
    ReadBack,
    ReadData,
    ReadReply,
    Reply,
    Request,
    SecuredControl,
    Version,
)
from protocols.uplink import Command, CommandAction, CommandResult, CommandState, decode_message
from protocols.uplink.secured import (
    CLOCK_DIS,
    ControlStep,
    WriteStep,
    late_report,
    parse_step,
    step_report,
    step_requests,
    with_clock,
)
from simulators.dlt645.meter import Dlt645Listener
from simulators.esam import SoftwareEsam
from simulators.meter import Meter, MeterSpec, Relay
from tests.headend.ops_support import (  # noqa: F401
    TUESDAY_10,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

ESAM_METER, PLAIN_METER = meter_id("A2", 1), meter_id("A2", 2)
ADDRESS = "000000000002"


def on_the_bus_flip_last_data_byte(frame: bytes) -> bytes:
    """A man in the middle: change the frame's last data byte (the MAC's) and fix the checksum."""
    start = frame.index(0x68)
    body = bytearray(frame[start:-2])
    body[-1] ^= 0x5A
    return frame[:start] + bytes(body) + bytes((sum(body) & 0xFF, 0x16))


@dataclass
class Gateway:
    """A thin gateway executor in front of one simulated ESAM meter."""

    meter: Meter
    esam: SoftwareEsam
    tamper: bool = False  # an attacker on the path flips a bit of every sealed block
    late_by: float = 0.0  # a second step reaches the gateway this many seconds late
    silent: bool = False  # the meter does not answer (off the bus)
    tamper_reply: bool = False  # a man in the middle on the bus alters the read-back's MAC
    read_clock: bool = True  # read the clock back after a clock set
    armed: dict[str, str] = field(default_factory=dict)  # meter → step id awaiting the button

    def observe(self, meter: str, now: datetime) -> CommandResult | None:
        """A sweep sees the relay closed: the armed step is executed (as the gateway reports)."""
        if self.meter.relay(now.timestamp()).value != "closed" or meter not in self.armed:
            return None
        step_id = self.armed.pop(meter)
        detail = {"relay": "closed", "by": "customer"}
        return CommandResult(
            id=step_id,
            gateway="gw2",
            state=CommandState.EXECUTED,
            at=now,
            meter=meter,
            detail=detail,
        )

    plain: list[Command] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = Dlt645Listener(Version.V2007, [self.meter])
        self.listener.add_esam(self.esam)
        self.master = Master(preamble=0)

    def ask(self, request: Request, ts: float) -> Reply | None:
        if self.silent:
            return None
        answers = self.listener.feed(self.master.send(request), ts)
        if not answers:
            self.master.abandon()
            return None
        wire = answers[0].data
        if self.tamper_reply and isinstance(request, ReadBack):
            wire = on_the_bus_flip_last_data_byte(wire)
        self.master.receive_data(wire)
        reply = self.master.next_event()
        return None if reply is NEED_DATA else reply

    def execute(self, command: Command, now: datetime) -> CommandResult | None:
        step = parse_step(command.params)
        if step is None:
            self.plain.append(command)
            return None
        if isinstance(step, ControlStep | WriteStep):
            now = now + timedelta(seconds=self.late_by)
        ts = now.timestamp()
        meter = command.meters[0]
        if isinstance(step, ControlStep | WriteStep) and now >= step.session_until:
            state, reason, report = late_report(step)
        else:
            replies: list[Reply | None] = []
            for request in step_requests(step, self.meter.address):
                if self.tamper and isinstance(request, SecuredControl):
                    request = replace(request, sealed=request.sealed[:-1] + b"\x00")
                replies.append(reply := self.ask(request, ts))
                if reply is None or isinstance(reply, AbnormalReply):
                    break
            state, reason, report = step_report(step, replies)
        detail: dict[str, object] = {"esam": report.model_dump(mode="json")}
        if state is CommandState.EXECUTED and isinstance(step, ControlStep):
            read = self.ask(
                ReadData(self.meter.address, 0x04000503), ts
            )  # status word 3: relay read-back
            detail["relay"] = self.meter.relay(ts).value if read is not None else None
            if command.action is CommandAction.RELAY_CLOSE_ALLOWED and detail["relay"] != "closed":
                state, reason = CommandState.ARMED, "awaiting the customer's button"
                self.armed[meter] = command.id
        if state is CommandState.EXECUTED and isinstance(step, WriteStep) and self.read_clock:
            day, clock = (self.ask(ReadData(self.meter.address, di), ts) for di in CLOCK_DIS)
            assert isinstance(day, ReadReply) and isinstance(clock, ReadReply)
            report = with_clock(report, day.values["meter.date"], clock.values["meter.time"])
            detail["esam"] = report.model_dump(mode="json")
        return CommandResult(
            id=command.id,
            gateway=command.gateway,
            state=state,
            at=now,
            meter=meter,
            reason=reason,
            detail=detail,
        )


class Rig:
    def __init__(self, ops, key_file, service=None, **esam: object) -> None:
        self.ops = ops
        self.published: list[tuple[str, bytes]] = []
        self.dispatcher = Dispatcher(
            ops.engine,
            lambda topic, payload: self.published.append((topic, payload)),
            ops.clock,
            GuardSettings(),
            CommandSettings(),
            encryption=service or SoftwareEncryptionService(key_file),
            flow=FlowSettings(),
        )
        meter = Meter(MeterSpec(address=ADDRESS), TUESDAY_10.timestamp() - 3600)
        self.gateway = Gateway(meter, SoftwareEsam(read_key_file(key_file), ADDRESS, **esam))

    def command(self, action: str, *meters_: str) -> str:
        r = self.ops.command("olga", action=action, meters=list(meters_))
        assert r.status_code == 201, r.text
        command_id = r.json()["id"]
        if r.json()["state"] == "awaiting_approval":
            a = self.ops.client.post(
                f"/api/v1/commands/{command_id}/approve", headers=self.ops.as_("sam")
            )
            assert a.status_code == 200, a.text
        return command_id

    def cycle(self, rounds: int = 8, pause: float = 1.0) -> None:
        """Dispatcher pass → gateway executes what was published → results ingested, repeated."""
        for _ in range(rounds):
            self.dispatcher.run_once()
            batch, self.published = self.published, []
            for topic, payload in batch:
                gateway, _, command = decode_message(topic, payload)
                assert isinstance(command, Command)
                result = self.gateway.execute(command, self.ops.clock.now())
                if result is not None:
                    with writing(self.ops.engine) as conn:
                        assert on_result(conn, gateway, result)
            self.ops.clock.advance(pause)

    def view(self, command_id: str) -> dict:
        r = self.ops.client.get(f"/api/v1/commands/{command_id}", headers=self.ops.as_("olga"))
        assert r.status_code == 200, r.text
        return r.json()


def flag_esam(ops, meter: str = ESAM_METER) -> None:
    with writing(ops.engine) as conn:
        conn.execute(update(meters).where(meters.c.id == meter).values(esam=True))


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "esam.key"
    create_key_file(path)
    return path


@pytest.fixture
def rig(ops, key_file):
    flag_esam(ops)
    return Rig(ops, key_file)


def test_secured_trip_end_to_end_with_steps_audit_and_view(rig):
    command_id = rig.command("relay_trip", ESAM_METER, PLAIN_METER)
    rig.cycle()
    view = rig.view(command_id)
    targets = {t["meter"]: t for t in view["targets"]}
    assert targets[ESAM_METER]["state"] == "executed"
    assert targets[ESAM_METER]["detail"]["relay"] == "open"
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.OPEN
    # the plaintext command went to the plain meter only
    assert [c.meters for c in rig.gateway.plain] == [(PLAIN_METER,)]
    assert [(s["kind"], s["state"], s["attempt"]) for s in view["steps"]] == [
        ("authenticate", "executed", 1),
        ("control", "executed", 1),
    ]
    with writing(rig.ops.engine) as conn:
        actions = list(
            conn.execute(
                select(audit_log.c.action).where(audit_log.c.subject == command_id)
            ).scalars()
        )
    assert actions.count("command.esam_step") == 2 and actions.count("command.esam_result") == 2
    accepted = [e.kind for e in rig.gateway.esam.log if e.accepted]
    assert accepted == ["authenticate", "control", "readback"]  # the reply MAC proof
    # the console's command page lists the steps (re-sent live with the per-meter table)
    from tests.web.support import sign_in

    client = sign_in(rig.ops.client.app, "olga")
    live = client.get(f"/commands/{command_id}/status", params={"targets": 1}).text
    assert 'id="steps"' in live and live.count('data-step="') == 2
    assert 'data-state="executed"' in live


def test_a_session_too_old_to_seal_restarts_from_authentication(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()  # publishes the authentication
    rig.cycle(rounds=1, pause=290)  # its result arrives; 290 s pass before the next pass
    rig.cycle()
    view = rig.view(command_id)
    assert view["targets"][0]["state"] == "executed"
    kinds = [(s["kind"], s["attempt"], s["state"]) for s in view["steps"]]
    assert kinds[0] == ("authenticate", 1, "executed")
    assert ("authenticate", 2, "executed") in kinds and kinds[-1] == ("control", 2, "executed")


def test_a_step_reaching_the_gateway_late_fails_cleanly_and_restarts(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.gateway.late_by = 400  # every second step is held 400 s: always past the window
    rig.cycle(rounds=10)
    view = rig.view(command_id)
    target = view["targets"][0]
    assert target["state"] == "failed"
    assert "gave up after 3 authentications" in target["reason"]
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED
    assert not any(e.kind == "control" for e in rig.gateway.esam.log)  # nothing reached it


def test_a_forged_mac_never_switches_and_the_reason_is_in_the_result(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.gateway.tamper = True
    rig.cycle(rounds=10)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed"
    assert "password_error_or_unauthorised" in target["reason"]
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED
    refused = [e for e in rig.gateway.esam.log if e.kind == "control"]
    assert len(refused) == 3 and not any(e.accepted for e in refused)


def test_a_silent_meter_is_retried_a_bounded_number_of_times(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.gateway.silent = True
    rig.cycle(rounds=10)
    view = rig.view(command_id)
    assert [(s["kind"], s["attempt"]) for s in view["steps"]] == [
        ("authenticate", 1),
        ("authenticate", 2),
        ("authenticate", 3),
    ]
    target = view["targets"][0]
    assert target["state"] == "failed" and "gave up after 3" in target["reason"]


def test_a_pause_after_authentication_holds_the_trip_then_restarts_it(rig):
    from headend.guards import store as guard_store

    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle(rounds=1)  # authenticated; the next pass stores the control step
    with writing(rig.ops.engine) as conn:
        guard_store.set_pause(conn, True, "storm", actor="sam", now=rig.ops.clock.now())
    rig.cycle(rounds=5, pause=60)  # five minutes paused: the session passes, nothing is sent
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED
    assert not any(e.kind == "control" for e in rig.gateway.esam.log)
    with writing(rig.ops.engine) as conn:
        guard_store.set_pause(conn, False, None, actor="sam", now=rig.ops.clock.now())
    rig.cycle()
    view = rig.view(command_id)
    assert view["targets"][0]["state"] == "executed"
    assert [(s["kind"], s["attempt"]) for s in view["steps"]] == [
        ("authenticate", 1),
        ("control", 1),  # never sent: reported late, the flow restarted
        ("authenticate", 2),
        ("control", 2),
    ]
    assert view["steps"][1]["sent_at"] is None


def test_no_step_is_started_past_the_commands_validity(rig):
    r = rig.ops.command("olga", action="relay_trip", meters=[ESAM_METER], valid_for=60)
    assert r.status_code == 201, r.text
    command_id = r.json()["id"]
    rig.dispatcher.run_once()  # the authentication goes out
    batch, rig.published = rig.published, []
    rig.ops.clock.advance(120)  # its result comes back after the command's valid_until
    for topic, payload in batch:
        gateway, _, command = decode_message(topic, payload)
        result = rig.gateway.execute(command, rig.ops.clock.now())
        with writing(rig.ops.engine) as conn:
            on_result(conn, gateway, result)
    rig.cycle(rounds=3)
    view = rig.view(command_id)
    assert view["targets"][0]["state"] == "expired"
    assert [s["kind"] for s in view["steps"]] == ["authenticate"]
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED


def test_a_step_refused_by_the_gateway_ends_the_target_with_the_reason(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()
    ((topic, payload),) = rig.published
    rig.published = []
    _, _, command = decode_message(topic, payload)
    refusal = CommandResult(
        id=command.id,
        gateway="gw2",
        state=CommandState.REFUSED,
        at=rig.ops.clock.now(),
        reason="signature: bad_signature",
    )
    with writing(rig.ops.engine) as conn:
        assert on_result(conn, "gw2", refusal)
    rig.cycle(rounds=2)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "bad_signature" in target["reason"]
    assert rig.gateway.esam.log == []


def test_a_forged_step_report_fails_the_target_without_stopping_the_dispatcher(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()
    ((topic, payload),) = rig.published
    rig.published = []
    _, _, command = decode_message(topic, payload)
    forged = CommandResult(
        id=command.id,
        gateway="gw2",
        state=CommandState.EXECUTED,
        at=rig.ops.clock.now(),
        meter=ESAM_METER,
        detail={"esam": {"step": "authenticate", "random2": "not hex", "x": 1}},
    )
    with writing(rig.ops.engine) as conn:
        assert on_result(conn, "gw2", forged)
    rig.cycle(rounds=2)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "random number 2" in target["reason"]
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED


def test_a_result_from_another_gateways_identity_is_ignored(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()
    ((topic, payload),) = rig.published
    rig.published = []
    _, _, command = decode_message(topic, payload)
    result = rig.gateway.execute(command, rig.ops.clock.now())
    stolen = result.model_copy(update={"gateway": "gw1"})  # gw1's broker identity, gw2's step
    with writing(rig.ops.engine) as conn:
        assert not on_result(conn, "gw1", stolen)
    rig.cycle(rounds=2)
    assert [s["state"] for s in rig.view(command_id)["steps"]] == ["sent"]


def test_the_encryption_service_is_called_with_no_transaction_open(ops, key_file):
    seen: list[int] = []

    class Watched(SoftwareEncryptionService):
        def authenticate(self, address):
            seen.append(ops.engine.pool.checkedout())
            return super().authenticate(address)

        def seal_control(self, session, seq, action, valid_until):
            seen.append(ops.engine.pool.checkedout())
            return super().seal_control(session, seq, action, valid_until)

    flag_esam(ops)
    rig = Rig(ops, key_file, service=Watched(key_file))
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle()
    assert rig.view(command_id)["targets"][0]["state"] == "executed"
    assert seen == [0, 0]  # a slow encryption machine never holds a database connection


def test_a_repeated_result_changes_nothing(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()
    ((topic, payload),) = rig.published
    rig.published = []
    _, _, command = decode_message(topic, payload)
    assert isinstance(command, Command)
    result = rig.gateway.execute(command, rig.ops.clock.now())
    summary = result.model_copy(update={"meter": None, "detail": {"meters": {"executed": 1}}})
    for message in (result, result, summary):  # QoS 1 may repeat; the summary follows
        with writing(rig.ops.engine) as conn:
            assert on_result(conn, "gw2", message)
    rig.cycle()
    steps = rig.view(command_id)["steps"]
    assert [s["kind"] for s in steps] == ["authenticate", "control"]


def test_an_unreachable_encryption_service_fails_cleanly(ops, key_file):
    class Down(SoftwareEncryptionService):
        def authenticate(self, address):
            raise EncryptionUnavailable("connection refused")

    flag_esam(ops)
    rig = Rig(ops, key_file, service=Down(key_file))
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle(rounds=2)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed"
    assert target["reason"] == "encryption service: connection refused"
    assert rig.gateway.esam.log == [] and rig.gateway.plain == []


def test_without_an_encryption_service_esam_meters_fail_with_the_reason(ops, key_file):
    flag_esam(ops)
    rig = Rig(ops, key_file)
    rig.dispatcher.encryption = None
    command_id = rig.command("relay_close_direct", ESAM_METER)
    rig.cycle(rounds=2)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "[esam]" in target["reason"]


def test_a_failed_authentication_is_not_retried(ops, tmp_path, key_file):
    other = tmp_path / "other.key"
    create_key_file(other)  # the head-end has the wrong master key for this meter
    flag_esam(ops)
    rig = Rig(ops, key_file, service=SoftwareEncryptionService(other))
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle(rounds=4)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "authentication_failed" in target["reason"]
    assert len([e for e in rig.gateway.esam.log if e.kind == "authenticate"]) == 1


def test_clock_set_goes_through_the_secured_flow(rig):
    rig.ops.clock.advance(20 * 60)  # 10:20, clear of the freeze window around 10:00
    meter = rig.gateway.meter
    ts = rig.ops.clock.now().timestamp()
    meter.set_time(ts, meter.meter_time(ts) + timedelta(minutes=7))  # the meter runs fast
    command_id = rig.command("time_sync", ESAM_METER)
    rig.cycle()
    view = rig.view(command_id)
    assert view["targets"][0]["state"] == "executed", view
    assert [s["kind"] for s in view["steps"]] == ["authenticate", "write"]
    now = rig.ops.clock.now()
    drift = meter.meter_time(now.timestamp()) - now.astimezone(meter.zone).replace(tzinfo=None)
    assert abs(drift.total_seconds()) < 15
    assert abs(view["targets"][0]["detail"]["offset_s"]) <= 10
    with writing(rig.ops.engine) as conn:
        assert conn.execute(select(esam_steps.c.params)).first() is not None


def test_a_clock_set_not_read_back_is_not_called_done(rig):
    rig.ops.clock.advance(20 * 60)
    rig.gateway.read_clock = False
    command_id = rig.command("time_sync", ESAM_METER)
    rig.cycle()
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "not read back" in target["reason"]


def test_a_clock_that_does_not_take_the_set_fails_with_its_offset(rig):
    real = rig.gateway.esam._apply
    rig.gateway.esam._apply = lambda meter, di, raw, ts: True  # accepts, but never sets
    try:
        rig.ops.clock.advance(20 * 60)
        meter = rig.gateway.meter
        ts = rig.ops.clock.now().timestamp()
        meter.set_time(ts, meter.meter_time(ts) + timedelta(minutes=7))
        command_id = rig.command("time_sync", ESAM_METER)
        rig.cycle()
    finally:
        rig.gateway.esam._apply = real
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and "s off" in target["reason"]
    assert abs(target["detail"]["offset_s"] - 420) < 15


def test_a_secured_close_allowed_is_armed_until_the_customers_button(rig):
    trip = rig.command("relay_trip", ESAM_METER)
    rig.cycle()
    assert rig.view(trip)["targets"][0]["state"] == "executed"
    close = rig.command("relay_close_allowed", ESAM_METER)
    rig.cycle()
    view = rig.view(close)
    assert view["state"] == "armed" and view["targets"][0]["state"] == "armed"
    assert [s["state"] for s in view["steps"]] == ["executed", "armed"]
    now = rig.ops.clock.now()
    assert rig.gateway.observe(ESAM_METER, now) is None  # not pressed yet
    rig.gateway.meter.press_button(now.timestamp())
    result = rig.gateway.observe(ESAM_METER, now)
    with writing(rig.ops.engine) as conn:
        assert on_result(conn, "gw2", result)
    view = rig.view(close)
    assert view["state"] == "executed" and view["targets"][0]["detail"]["by"] == "customer"
    assert [s["state"] for s in view["steps"]] == ["executed", "executed"]


def test_the_dispatcher_polls_fast_only_while_a_step_is_in_flight(rig):
    """Each hop of a secured flow waits ``step_poll_interval`` (0.1 s), not a dispatch interval;
    with nothing in flight the dispatcher is back to its interval."""

    class RealTime:  # the test clock is manual (no wall time); the dispatcher's is real-time
        def now(self):
            return rig.ops.clock.now()

        def wall_seconds(self, seconds):
            return seconds

    rig.dispatcher.clock = RealTime()
    idle = CommandSettings().dispatch_interval
    assert rig.dispatcher.next_wait() == idle
    rig.command("relay_trip", ESAM_METER)
    rig.dispatcher.run_once()  # the authentication step is published: awaiting its result
    assert rig.published and rig.dispatcher.next_wait() == CommandSettings().step_poll_interval
    rig.published = []  # the gateway never answers: the wait stays short while the step is
    assert rig.dispatcher.next_wait() < idle  # valid, then the step ends and it is idle again
    rig.cycle(rounds=3, pause=61)
    rig.cycle(rounds=1)
    assert rig.dispatcher.next_wait() == idle


def _alerts(ops, command_id: str) -> list[dict]:
    with writing(ops.engine) as conn:
        rows = conn.execute(
            select(audit_log.c.detail).where(
                audit_log.c.subject == command_id, audit_log.c.action == "command.esam_reply_mac"
            )
        ).scalars()
        return [json.loads(text) for text in rows]  # canonical JSON text (hash-chained)


def test_a_reply_mac_altered_on_the_bus_is_never_marked_executed(rig):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.gateway.tamper_reply = True
    rig.cycle()
    view = rig.view(command_id)
    target = view["targets"][0]
    assert target["state"] == "failed" and view["state"] == "failed"
    assert target["reason"].startswith("reply_mac_invalid: the meter's reply MAC does not verify")
    assert [(s["kind"], s["state"]) for s in view["steps"]] == [
        ("authenticate", "executed"),
        ("control", "failed"),  # no retry; the step is not "executed" on the gateway's word
    ]
    assert view["steps"][1]["reason"] == target["reason"]
    # the meter did switch (only its reply was altered): the operator sees its relay, not "done"
    assert target["detail"]["relay"] == "open"
    (alert,) = _alerts(rig.ops, command_id)
    assert alert["meter"] == ESAM_METER and alert["reason"] == target["reason"]
    assert len(alert["readback"]["mac"]) == 8


@pytest.mark.parametrize(
    "readback",
    [
        None,  # the proof is simply left out
        {"identifier": "DF01000800000008", "data": "1A00000000000000", "mac": "00000000"},
    ],
)
def test_a_forged_step_result_claiming_executed_fails_with_a_named_reason(rig, readback):
    command_id = rig.command("relay_trip", ESAM_METER)
    rig.cycle(rounds=1, pause=0)  # the authentication is executed; its result is stored
    rig.dispatcher.run_once()  # the control step is sealed and published
    ((topic, payload),) = rig.published
    rig.published = []
    _, _, command = decode_message(topic, payload)
    step = parse_step(command.params)
    assert isinstance(step, ControlStep) and step.readback == "DF01000800000008"
    report = {"step": "control", "session": step.session, "done": 1}
    if readback is not None:
        report["readback"] = readback
    forged = CommandResult(
        id=command.id,
        gateway="gw2",
        state=CommandState.EXECUTED,
        at=rig.ops.clock.now(),
        meter=ESAM_METER,
        detail={"esam": report, "relay": "open"},
    )
    with writing(rig.ops.engine) as conn:
        assert on_result(conn, "gw2", forged)
    rig.cycle(rounds=2)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed"
    expected = "reply_mac_missing" if readback is None else "reply_mac_invalid"
    assert target["reason"].startswith(expected)
    assert rig.gateway.meter.relay(rig.ops.clock.now().timestamp()) is Relay.CLOSED
    assert len(_alerts(rig.ops, command_id)) == 1


def test_a_clock_set_whose_reply_mac_is_altered_fails(rig):
    rig.ops.clock.advance(20 * 60)
    meter = rig.gateway.meter
    ts = rig.ops.clock.now().timestamp()
    meter.set_time(ts, meter.meter_time(ts) + timedelta(minutes=7))
    rig.gateway.tamper_reply = True
    command_id = rig.command("time_sync", ESAM_METER)
    rig.cycle()
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed" and target["reason"].startswith("reply_mac_invalid")
    assert _alerts(rig.ops, command_id)


def test_the_reply_mac_is_checked_by_the_encryption_service(ops, key_file):
    """The normal flow's proof goes through ``verify_reply_mac`` with the step's frame count."""
    seen: list[int] = []

    class Watched(SoftwareEncryptionService):
        def verify_reply_mac(self, session, seq, header, data, mac):
            seen.append(seq)
            return super().verify_reply_mac(session, seq, header, data, mac)

    flag_esam(ops)
    rig = Rig(ops, key_file, service=Watched(key_file))
    rig.ops.clock.advance(20 * 60)
    trip = rig.command("relay_trip", ESAM_METER)
    rig.cycle()
    assert rig.view(trip)["targets"][0]["state"] == "executed"
    clock = rig.command("time_sync", ESAM_METER)
    rig.cycle()
    assert rig.view(clock)["targets"][0]["state"] == "executed"
    assert seen == [1, 2]  # one sealed control; two sealed writes (date, time)
    assert _alerts(ops, trip) == [] and _alerts(ops, clock) == []
