"""Commands that cannot be split or faked past their checks (issue 19).

- The supervisor threshold counts the operator's disconnects over a rolling window: an area
  disconnect split per area (or per meter) needs approval once the total passes the threshold.
- A result from a gateway counts only for a command the head-end has published to that gateway;
  ``sent_at`` is recorded at publication even when the gateway answers before the dispatcher
  marks it sent.
"""

from __future__ import annotations

from sqlalchemy import select, update

from headend.commands.dispatcher import Dispatcher
from headend.commands.ingest import on_result
from headend.db import reading, writing
from headend.db.ops_tables import command_dispatches, commands
from protocols.uplink import CommandResult, CommandState, decode
from protocols.uplink.messages import Command
from tests.headend.ops_support import (  # noqa: F401
    TUESDAY_10,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

A1 = [meter_id("A1", i) for i in range(1, 15)]  # A1-m00 is keep-power
THRESHOLD = 10  # the default supervisor_threshold


def trip(ops, who, meters=None, areas=None):
    body = {"action": "relay_trip"}
    if meters:
        body["meters"] = meters
    if areas:
        body["areas"] = areas
    r = ops.command(who, **body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_disconnect_split_in_parts_needs_approval_once_the_parts_pass_the_threshold(ops):
    first = trip(ops, "olga", meters=A1[:6])
    second = trip(ops, "olga", meters=A1[6:10])
    assert first["state"] == second["state"] == "approved"  # 10: at the threshold
    third = trip(ops, "olga", meters=A1[10:12])
    assert third["state"] == "awaiting_approval"
    assert third["approval_rule"] == "supervisor_approval"
    otto = trip(ops, "otto", meters=A1[12:14])  # another operator has their own count
    assert otto["state"] == "approved"


def test_an_area_disconnect_split_per_area_needs_approval(ops):
    # A2 (5 meters) + B1 (3) + 4 of A1: 12 meters, each request under the threshold of 10
    states = [
        trip(ops, "olga", areas=["A2"])["state"],
        trip(ops, "olga", areas=["B1"])["state"],
        trip(ops, "olga", meters=A1[:4])["state"],
    ]
    assert states == ["approved", "approved", "awaiting_approval"]


def test_the_window_rolls_and_reviewed_or_cancelled_commands_do_not_count(ops):
    big = trip(ops, "olga", meters=A1[:12])
    assert big["state"] == "awaiting_approval"
    r = ops.client.post(f"/api/v1/commands/{big['id']}/approve", headers=ops.as_("sam"))
    assert r.status_code == 200
    small = trip(ops, "olga", meters=A1[12:14])
    assert small["state"] == "approved"  # the approved 12 were reviewed: not counted
    eight = trip(ops, "olga", areas=["A2"])  # 2 + 5 = 7
    r = ops.client.post(f"/api/v1/commands/{eight['id']}/cancel", headers=ops.as_("olga"))
    assert r.status_code == 200
    assert trip(ops, "olga", meters=[*A1[:4], meter_id("B1", 0)])["state"] == "approved"  # 2+5
    ops.clock.advance(3600)  # the rolling window has passed
    assert trip(ops, "olga", meters=A1[:10])["state"] == "approved"


# --- results bound to commands ---------------------------------------------------------------


def _dispatch(ops, command_id):
    with reading(ops.engine) as conn:
        return conn.execute(
            select(command_dispatches).where(command_dispatches.c.command_id == command_id)
        ).one()


def _command(ops, command_id):
    with reading(ops.engine) as conn:
        return conn.execute(select(commands).where(commands.c.id == command_id)).one()


def _result(dispatch, state, meter=None, gateway=None):
    return CommandResult(
        id=dispatch.id,
        gateway=gateway or dispatch.gateway,
        state=state,
        at=dispatch.claimed_at or TUESDAY_10,
        meter=meter,
    )


def test_a_forged_result_for_a_command_not_yet_sent_is_refused(ops):
    cid = trip(ops, "olga", meters=[meter_id("A2", 1)])["id"]
    dispatch = _dispatch(ops, cid)
    assert dispatch.state == "approved" and dispatch.sent_at is None
    with writing(ops.engine) as conn:
        for state in (CommandState.RECEIVED, CommandState.EXECUTED):
            assert on_result(conn, dispatch.gateway, _result(dispatch, state)) is False
    row = _command(ops, cid)
    assert row.state == "approved" and row.finished_at is None


def test_a_result_from_another_gateway_or_for_another_meter_is_refused(ops):
    sent = []
    cid = trip(ops, "olga", meters=[meter_id("A2", 1)])["id"]
    ops.clock.advance(1)
    Dispatcher(
        ops.engine, lambda t, p: sent.append(p), ops.clock, ops.client.app.state.ops.guards
    ).run_once()
    dispatch = _dispatch(ops, cid)
    assert dispatch.state == "sent"
    with writing(ops.engine) as conn:
        other = _result(dispatch, CommandState.EXECUTED, gateway="gw1")
        assert on_result(conn, "gw1", other) is False
        stranger = _result(dispatch, CommandState.EXECUTED, meter=meter_id("A2", 2))
        assert on_result(conn, dispatch.gateway, stranger) is False
        real = _result(dispatch, CommandState.EXECUTED, meter=meter_id("A2", 1))
        assert on_result(conn, dispatch.gateway, real) is True
    assert _command(ops, cid).state == "executed"


def test_sent_at_is_recorded_when_the_gateway_answers_before_the_dispatcher_marks_it(ops):
    cid = trip(ops, "olga", meters=[meter_id("A2", 1)])["id"]
    ops.clock.advance(1)

    def publish_and_answer_at_once(topic: str, payload: bytes) -> None:
        command = decode(payload, Command)
        result = CommandResult(
            id=command.id, gateway=command.gateway, state=CommandState.RECEIVED, at=command.issued
        )
        with writing(ops.engine) as conn:  # the gateway's "received" overtakes the PUBACK wait
            assert on_result(conn, command.gateway, result) is True

    guards = ops.client.app.state.ops.guards
    Dispatcher(ops.engine, publish_and_answer_at_once, ops.clock, guards).run_once()
    row, dispatch = _command(ops, cid), _dispatch(ops, cid)
    assert dispatch.sent_at is not None and row.sent_at is not None
    assert row.state == "received" and dispatch.state == "received"


def test_a_claimed_but_unpublished_dispatch_still_refuses_final_results_after_expiry(ops):
    cid = trip(ops, "olga", meters=[meter_id("A2", 1)])["id"]
    with writing(ops.engine) as conn:  # expired before it was ever sent
        conn.execute(
            update(command_dispatches)
            .where(command_dispatches.c.command_id == cid)
            .values(state="expired")
        )
    dispatch = _dispatch(ops, cid)
    with writing(ops.engine) as conn:
        assert on_result(conn, dispatch.gateway, _result(dispatch, CommandState.EXECUTED)) is False
    assert _command(ops, cid).finished_at is None


def test_commands_to_a_gateway_running_a_forged_archive_are_held(ops):
    from sqlalchemy import insert

    from headend.archive import push
    from headend.commands.signing import NoSigner
    from headend.db.tables import gateway_state

    with writing(ops.engine) as conn:
        for gw in ("gw1", "gw2"):
            push.refresh(conn, gw, TUESDAY_10, force=True, signer=NoSigner())  # version 1
        conn.execute(
            insert(gateway_state),
            [
                {
                    "gateway": gw,
                    "online": True,
                    "since": TUESDAY_10,
                    "last_seen": TUESDAY_10,
                    "archive_version": version,
                    "health": "{}",
                }
                for gw, version in (("gw1", 1), ("gw2", 999))
            ],
        )
    held = trip(ops, "olga", meters=[meter_id("A2", 1)])["id"]  # A2 is served by gw2
    fine = trip(ops, "olga", meters=[A1[0]])["id"]
    sent = []
    guards = ops.client.app.state.ops.guards
    dispatcher = Dispatcher(ops.engine, lambda t, p: sent.append(t), ops.clock, guards)
    assert dispatcher.run_once() == 1 and sent == ["taiqu/v1/gw1/down/cmd"]
    dispatch = _dispatch(ops, held)
    assert dispatch.state == "approved" and "never issued" in dispatch.reason
    assert _dispatch(ops, fine).state == "sent"
    with writing(ops.engine) as conn:  # the gateway took a real (signed) push: version 2
        push.refresh(conn, "gw2", TUESDAY_10, force=True, signer=NoSigner())
        conn.execute(
            update(gateway_state).where(gateway_state.c.gateway == "gw2").values(archive_version=2)
        )
    assert dispatcher.run_once() == 1 and _dispatch(ops, held).state == "sent"


def test_a_gateway_left_behind_gets_the_real_push_republished_byte_for_byte(ops):
    from sqlalchemy import insert

    from headend.archive import push
    from headend.commands.signing import NoSigner
    from headend.db.tables import archive_versions, gateway_state, mqtt_outbox

    with writing(ops.engine) as conn:
        push.refresh(conn, "gw2", TUESDAY_10, force=True, signer=NoSigner())
        push.refresh(conn, "gw2", TUESDAY_10, force=True, signer=NoSigner())  # version 2
        conn.execute(
            insert(gateway_state).values(
                gateway="gw2",
                online=True,
                since=TUESDAY_10,
                last_seen=TUESDAY_10,
                archive_version=1,
                health="{}",
            )
        )
    ops.as_("olga")  # builds the app's settings
    guards = ops.client.app.state.ops.guards
    dispatcher = Dispatcher(ops.engine, lambda t, p: None, ops.clock, guards)

    def archive_rows():
        with reading(ops.engine) as conn:
            return conn.execute(
                select(mqtt_outbox.c.payload, mqtt_outbox.c.retain)
                .where(mqtt_outbox.c.topic == "taiqu/v1/gw2/down/archive")
                .order_by(mqtt_outbox.c.id)
            ).all()

    dispatcher.run_once()
    assert len(archive_rows()) == 2  # just issued: no alert yet, nothing republished
    ops.clock.advance(11 * 60)
    dispatcher.run_once()
    dispatcher.run_once()  # rate-limited: once
    rows = archive_rows()
    assert len(rows) == 3 and rows[2].retain
    with reading(ops.engine) as conn:
        issued = conn.execute(
            select(archive_versions.c.body).where(archive_versions.c.version == 2)
        ).scalar_one()
    assert bytes(rows[2].payload) == bytes(issued)  # the same version, the same signature
