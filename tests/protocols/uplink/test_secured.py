"""The secured-step extension of the contract: schemas, requests and results (docs/mqtt.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols import ContractError
from protocols.dlt645 import (
    AbnormalReply,
    Authenticate,
    Authenticated,
    ControlAck,
    Function,
    ReadBack,
    ReadBackData,
    SecuredControl,
    SecuredWrite,
    WriteAck,
    encode_request,
)
from protocols.uplink import Command, CommandAction, CommandState, decode, encode
from protocols.uplink.secured import (
    AuthenticateStep,
    ControlStep,
    SealedWrite,
    WriteStep,
    late_report,
    parse_step,
    step_params,
    step_report,
    step_requests,
)

T = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
ADDRESS = "000000000002"
AUTH = AuthenticateStep(
    session="ab12cd34",
    factor="0000000000000002",
    random1="1112131415161718",
    ciphertext1="0102030405060708",
)
CONTROL = ControlStep(session="ab12cd34", session_until=T, sealed="20" * 20)
WRITE = WriteStep(
    session="ab12cd34",
    session_until=T,
    writes=(
        SealedWrite(di="04000101", level="99", payload="0210032601020304"),
        SealedWrite(di="04000102", level="98", payload="AA" * 20),
    ),
)


@pytest.mark.parametrize("step", [AUTH, CONTROL, WRITE])
def test_a_step_travels_inside_an_ordinary_signed_command(step):
    command = Command(
        id="c1.1:ab12cd34a",
        gateway="gw2",
        meters=("A2-m01",),
        action=CommandAction.RELAY_TRIP,
        params=step_params(step),
        issued=T,
        valid_until=T,
        nonce="n" * 16,
    )
    back = decode(encode(command), Command)
    assert parse_step(back.params) == step
    assert back.signing_bytes() == command.signing_bytes()


def test_commands_without_a_step_have_none():
    assert parse_step({"quantities": ["energy.active.import.total"]}) is None


@pytest.mark.parametrize(
    "params",
    [
        {"esam": {"step": "authenticate", "session": "s", "factor": "00", "random1": "0" * 16,
                  "ciphertext1": "0" * 16}},  # short factor
        {"esam": {"step": "control", "session": "s", "sealed": "00" * 20}},  # no session_until
        {"esam": {"step": "write", "session": "s", "session_until": T.isoformat(), "writes": []}},
        {"esam": {"esam": 2, "step": "control", "session": "s",
                  "session_until": T.isoformat(), "sealed": "00" * 20}},  # a future version
        {"esam": {"step": "open_sesame", "session": "s"}},
        {"esam": "authenticate"},
    ],
)  # fmt: skip
def test_malformed_steps_are_contract_errors(params):
    with pytest.raises(ContractError):
        parse_step(params)


def test_step_requests_encode_as_secured_frames():
    (auth,) = step_requests(AUTH, ADDRESS)
    assert isinstance(auth, Authenticate) and auth.factor == bytes.fromhex("0000000000000002")
    (control,) = step_requests(CONTROL, ADDRESS)
    assert isinstance(control, SecuredControl) and control.sealed == b"\x20" * 20
    writes = step_requests(WRITE, ADDRESS)
    assert [type(w) for w in writes] == [SecuredWrite, SecuredWrite]
    assert writes[0].password == "99000000" and writes[1].password == "98000000"
    for request in (auth, control, *writes):
        encode_request(request)  # every one is a valid frame


def test_reports_of_accepted_refused_and_silent_steps():
    state, reason, report = step_report(
        AUTH, [Authenticated(ADDRESS, b"\x01\x02\x03\x04", bytes(8))]
    )
    assert state is CommandState.EXECUTED and reason is None
    assert report.random2 == "01020304" and report.esam_serial == "0" * 16
    refusal = AbnormalReply(ADDRESS, Function.SECURITY, 8, ("authentication_failed",))
    state, reason, report = step_report(AUTH, [refusal])
    assert state is CommandState.FAILED and report.outcome == "refused"
    assert report.reasons == ("authentication_failed",) and "authentication_failed" in reason
    state, _, report = step_report(CONTROL, [None])
    assert state is CommandState.FAILED and report.outcome == "no_reply"
    state, _, report = step_report(CONTROL, [ControlAck(ADDRESS)])
    assert state is CommandState.EXECUTED and report.done == 1
    state, _, report = step_report(WRITE, [WriteAck(ADDRESS)])
    assert state is CommandState.FAILED and report.done == 1  # the second write never ran
    state, _, report = step_report(WRITE, [WriteAck(ADDRESS), WriteAck(ADDRESS)])
    assert state is CommandState.EXECUTED and report.done == 2
    state, _, report = step_report(CONTROL, [Authenticated(ADDRESS, bytes(4), bytes(8))])
    assert state is CommandState.FAILED and report.outcome == "unexpected"


def test_late_report():
    state, reason, report = late_report(CONTROL)
    assert state is CommandState.FAILED and report.outcome == "late" and "window" in reason


def test_a_clock_read_back_travels_in_the_report():
    from datetime import date, time

    from protocols.uplink.secured import StepReport, with_clock

    _, _, report = step_report(WRITE, [WriteAck(ADDRESS), WriteAck(ADDRESS)])
    read = with_clock(report, date(2026, 3, 10), time(10, 0, 5))
    back = StepReport.model_validate(read.model_dump(mode="json"))
    assert back.meter_time == datetime(2026, 3, 10, 10, 0, 5) and back.done == 2


def test_a_read_back_follows_the_sealed_frames_and_travels_in_the_report():
    step = CONTROL.model_copy(update={"readback": "DF01000800000008"})
    requests = step_requests(step, ADDRESS)
    assert isinstance(requests[0], SecuredControl) and isinstance(requests[1], ReadBack)
    assert requests[1].identifier == bytes.fromhex("DF01000800000008")
    ack = ControlAck(ADDRESS)
    data = ReadBackData(ADDRESS, requests[1].identifier, bytes(8), bytes.fromhex("CAFEBABE"))
    state, _, report = step_report(step, [ack, data])
    assert state is CommandState.EXECUTED and report.done == 1
    assert report.readback is not None and report.readback.mac == "CAFEBABE"
    # a refused or silent read-back does not undo an accepted control: the head-end judges
    refused = AbnormalReply(ADDRESS, Function.SECURITY, 1, ("other_error",))
    for last in (refused, None):
        state, _, report = step_report(step, [ack, last])
        assert state is CommandState.EXECUTED and report.readback is None
    # a control the meter refused never reaches the read-back
    state, _, report = step_report(step, [refused])
    assert state is CommandState.FAILED and report.readback is None
