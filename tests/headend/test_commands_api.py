"""Commands through the API: guard rails refusing and allowing, approval, cancel, dispatch,
results, expiry; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

from sqlalchemy import select

from headend import audit
from headend.commands.dispatcher import Dispatcher
from headend.commands.ingest import on_result
from headend.db import reading, writing
from headend.db.tables import readings
from headend.guards import GuardSettings
from protocols.uplink import Command, CommandResult, CommandState, decode
from tests.headend.ops_support import (  # noqa: F401
    SHANGHAI,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

A1_PLAIN = [meter_id("A1", i) for i in range(1, 15)]  # A1-m00 is keep-power


def trip(ops, who="olga", meters=None, **kw):
    return ops.command(who, action="relay_trip", meters=meters or A1_PLAIN[:2], **kw)


def at_local(ops, y, mo, d, h, mi=0):
    ops.clock.current = datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


def dispatcher(ops, sent):
    return Dispatcher(
        ops.engine,
        lambda topic, payload: sent.append((topic, payload)),
        ops.clock,
        ops.client.app.state.ops.guards,
    )


def refused_rule(response, status=409):
    assert response.status_code == status, response.text
    return response.json()["detail"]["rule"]


def last_refusal(ops):
    with reading(ops.engine) as conn:
        return audit.entries(conn, action="command.refused", limit=1000)[-1]


def test_an_allowed_disconnect_is_approved_at_once_and_fans_out_per_gateway(ops):
    r = ops.command("olga", action="relay_trip", meters=[*A1_PLAIN[:2], meter_id("A2", 1)])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "approved" and body["approved_by"] is None
    assert {d["gateway"] for d in body["dispatches"]} == {"gw1", "gw2"}
    assert {t["meter"]: t["gateway"] for t in body["targets"]} == {
        "A1-m01": "gw1",
        "A1-m02": "gw1",
        "A2-m01": "gw2",
    }
    assert body["areas"] == ["A1", "A2"]


def test_keep_power_refuses_and_allows(ops):
    r = trip(ops, meters=[meter_id("A1", 0), meter_id("A1", 1)])
    assert refused_rule(r) == "keep_power"
    assert "A1-m00" in r.json()["detail"]["message"]
    entry = last_refusal(ops)
    assert entry.actor == "olga" and '"rule":"keep_power"' in entry.detail
    assert trip(ops, meters=[meter_id("A1", 1)]).status_code == 201


def test_window_hours_refuse_at_night_and_allow_by_day(ops):
    at_local(ops, 2026, 3, 10, 22)
    assert refused_rule(trip(ops)) == "window.hours"
    at_local(ops, 2026, 3, 10, 9)
    assert trip(ops).status_code == 201


def test_weekends_and_holidays_refuse(ops):
    at_local(ops, 2026, 3, 14, 10)  # Saturday
    assert refused_rule(trip(ops)) == "window.weekday"
    at_local(ops, 2026, 10, 1, 10)  # National Day, a Thursday
    assert refused_rule(trip(ops)) == "window.holiday"
    at_local(ops, 2026, 10, 9, 10)  # the Friday after the Golden Week
    assert trip(ops).status_code == 201


def test_reads_are_not_subject_to_the_disconnect_window(ops):
    at_local(ops, 2026, 3, 14, 23)
    r = ops.command(
        "olga",
        action="read",
        areas=["A2"],
        params={"frozen": {"from": "2026-03-01", "to": "2026-03-13"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["meter_count"] == 5
    assert r.json()["params"] == {"frozen": {"from": "2026-03-01", "to": "2026-03-13"}}


def test_extreme_weather_day_declared_by_a_supervisor(ops):
    put = ops.client.put(
        "/api/v1/commands/guard-rails/extreme-weather/2026-03-10",
        json={"reason": "typhoon"},
        headers=ops.as_("sam"),
    )
    assert put.status_code == 200, put.text
    assert refused_rule(trip(ops)) == "window.extreme_weather"
    # operators and area-scoped supervisors may not declare or withdraw
    for who in ("olga", "sid"):
        r = ops.client.delete(
            "/api/v1/commands/guard-rails/extreme-weather/2026-03-10", headers=ops.as_(who)
        )
        assert r.status_code == 403, r.text
    gone = ops.client.delete(
        "/api/v1/commands/guard-rails/extreme-weather/2026-03-10", headers=ops.as_("sam")
    )
    assert gone.status_code == 204
    assert trip(ops).status_code == 201


def test_pause_switch_refuses_and_holds_queued_disconnects(ops):
    queued = trip(ops).json()["id"]
    r = ops.client.put(
        "/api/v1/commands/guard-rails/pause",
        json={"paused": True, "reason": "storm"},
        headers=ops.as_("sam"),
    )
    assert r.status_code == 200
    assert (
        ops.client.put(
            "/api/v1/commands/guard-rails/pause", json={"paused": False}, headers=ops.as_("olga")
        ).status_code
        == 403
    )
    refusal = trip(ops)
    assert refused_rule(refusal) == "pause" and "storm" in refusal.json()["detail"]["message"]
    sent: list = []
    assert dispatcher(ops, sent).run_once() == 0  # the queued disconnect is held
    view = ops.client.get(f"/api/v1/commands/{queued}", headers=ops.as_("vic")).json()
    assert view["state"] == "approved" and "paused" in view["dispatches"][0]["reason"]
    ops.client.put(
        "/api/v1/commands/guard-rails/pause", json={"paused": False}, headers=ops.as_("sam")
    )
    assert dispatcher(ops, sent).run_once() == 1 and len(sent) == 1
    state = ops.client.get("/api/v1/commands/guard-rails", headers=ops.as_("vic")).json()
    assert state["paused"] is False


def test_hourly_limits_per_area_and_fleet(ops):
    ops.as_("olga")
    st = ops.client.app.state
    st.ops = dataclasses.replace(
        st.ops, guards=GuardSettings(hourly_limit_area=4, hourly_limit_fleet=6)
    )
    assert trip(ops, meters=A1_PLAIN[:3]).status_code == 201
    assert refused_rule(trip(ops, meters=A1_PLAIN[3:5])) == "hourly_limit.area"
    assert trip(ops, meters=A1_PLAIN[3:4]).status_code == 201  # 4 in A1: at the limit
    assert trip(ops, meters=[meter_id("A2", 0)]).status_code == 201  # 5 fleet-wide
    assert refused_rule(trip(ops, meters=[meter_id("B1", 0), meter_id("B1", 1)])) == (
        "hourly_limit.fleet"
    )
    ops.clock.advance(3601)  # an hour later the budget is back
    assert trip(ops, meters=A1_PLAIN[5:9]).status_code == 201


def test_a_large_disconnect_needs_a_second_user_a_supervisor(ops):
    r = trip(ops, meters=A1_PLAIN[:12])
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "awaiting_approval" and body["approval_rule"] == "supervisor_approval"
    cid = body["id"]
    sent: list = []
    assert dispatcher(ops, sent).run_once() == 0  # nothing goes out unapproved
    for who in ("olga", "otto"):  # operators may not approve
        assert (
            ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_(who)).status_code
            == 403
        )
    assert (
        ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sid")).status_code
        == 404
    )  # outside sid's areas
    ok = ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sam"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "approved" and ok.json()["approved_by"] == "sam"
    again = ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sue"))
    assert refused_rule(again) == "state"
    assert dispatcher(ops, sent).run_once() == 1


def test_a_supervisor_cannot_approve_their_own_request(ops):
    cid = trip(ops, who="sam", meters=A1_PLAIN[:11]).json()["id"]
    r = ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sam"))
    assert refused_rule(r, 403) == "second_user"
    assert (
        ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sue")).status_code
        == 200
    )


def test_approval_rechecks_the_guard_rails(ops):
    cid = trip(ops, meters=A1_PLAIN[:12]).json()["id"]
    at_local(ops, 2026, 3, 10, 18)
    r = ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sam"))
    assert refused_rule(r) == "window.hours"


def test_cancel_before_sending_and_not_after(ops):
    first = trip(ops).json()["id"]
    r = ops.client.post(
        f"/api/v1/commands/{first}/cancel", json={"reason": "paid"}, headers=ops.as_("otto")
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert {t["state"] for t in r.json()["targets"]} == {"cancelled"}
    assert (
        ops.client.post(f"/api/v1/commands/{first}/cancel", headers=ops.as_("vic")).status_code
        == 403
    )
    second = trip(ops).json()["id"]
    dispatcher(ops, []).run_once()
    late = ops.client.post(f"/api/v1/commands/{second}/cancel", headers=ops.as_("olga"))
    assert refused_rule(late) == "state"


def test_dispatch_publishes_the_contract_command_and_results_finish_it(ops):
    cid = ops.command(
        "olga", action="relay_trip", meters=[*A1_PLAIN[:2], meter_id("A2", 1)]
    ).json()["id"]
    sent: list = []
    assert dispatcher(ops, sent).run_once() == 2
    assert dispatcher(ops, sent).run_once() == 0  # nothing twice
    by_topic = {topic: decode(payload, Command) for topic, payload in sent}
    gw1 = by_topic["taiqu/v1/gw1/down/cmd"]
    assert gw1.meters == ("A1-m01", "A1-m02") and gw1.action == "relay_trip"
    assert gw1.valid_until > gw1.issued and len(gw1.nonce) >= 8
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "sent" and view["sent_at"]
    now = ops.clock.now()
    with writing(ops.engine) as conn:
        assert on_result(
            conn,
            "gw1",
            CommandResult(id=gw1.id, gateway="gw1", state=CommandState.RECEIVED, at=now),
        )
        for m in gw1.meters:
            on_result(
                conn,
                "gw1",
                CommandResult(
                    id=gw1.id,
                    gateway="gw1",
                    state=CommandState.EXECUTED,
                    at=now,
                    meter=m,
                    detail={"relay": "open"},
                ),
            )
        assert not on_result(
            conn,
            "gw2",
            CommandResult(id=gw1.id, gateway="gw2", state=CommandState.EXECUTED, at=now),
        )
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "received"
    gw2 = by_topic["taiqu/v1/gw2/down/cmd"]
    with writing(ops.engine) as conn:
        on_result(
            conn,
            "gw2",
            CommandResult(
                id=gw2.id,
                gateway="gw2",
                state=CommandState.FAILED,
                at=now,
                meter="A2-m01",
                reason="meter did not answer",
            ),
        )
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "failed" and view["reason"] == "2 of 3 executed"
    outcome = {t["meter"]: (t["state"], t["detail"], t["reason"]) for t in view["targets"]}
    assert outcome["A1-m01"] == ("executed", {"relay": "open"}, None)
    assert outcome["A2-m01"][0] == "failed" and outcome["A2-m01"][2] == "meter did not answer"
    assert {d["state"] for d in view["dispatches"]} == {"executed", "failed"}


def test_on_demand_read_results_are_visible_on_the_command(ops):
    cid = ops.command(
        "olga",
        action="read",
        meters=["B1-m00"],
        params={"quantities": ["energy.active.import.total"]},
    ).json()["id"]
    sent: list = []
    dispatcher(ops, sent).run_once()
    cmd = decode(sent[0][1], Command)
    now = ops.clock.now()
    with writing(ops.engine) as conn:
        conn.execute(
            readings.insert().values(
                meter="B1-m00",
                quantity="energy.active.import.total",
                time=now,
                kind="instant",
                value="123.45",
                gateway="gw3",
                gateway_time=now,
                command=cmd.id,
            )
        )
        on_result(
            conn,
            "gw3",
            CommandResult(
                id=cmd.id, gateway="gw3", state=CommandState.EXECUTED, at=now, meter="B1-m00"
            ),
        )
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "executed"
    assert [(r["meter"], r["value"]) for r in view["readings"]] == [("B1-m00", "123.45")]


def test_unapproved_and_unsent_commands_expire(ops):
    waiting = trip(ops, meters=A1_PLAIN[:12], valid_for=600).json()["id"]
    unsent = ops.command("olga", action="read", meters=["B1-m00"], valid_for=600).json()["id"]
    ops.clock.advance(601)
    d = dispatcher(ops, [])
    assert d.run_once() == 0
    for cid, why in ((waiting, "not approved"), (unsent, "not sent")):
        view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
        assert view["state"] == "expired"
        assert why in view["targets"][0]["reason"]


def test_sent_commands_without_results_expire_after_the_grace(ops):
    cid = ops.command("olga", action="read", meters=["B1-m00"], valid_for=600).json()["id"]
    d = dispatcher(ops, [])
    d.run_once()
    ops.clock.advance(601)
    d.run_once()
    assert ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()["state"] == (
        "sent"
    )
    ops.clock.advance(d.settings.result_grace)
    d.run_once()
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "expired" and "no result" in view["targets"][0]["reason"]


def test_a_failed_publish_is_retried(ops):
    cid = trip(ops).json()["id"]

    def broken(topic, payload):
        raise OSError("broker down")

    d = Dispatcher(ops.engine, broken, ops.clock, ops.client.app.state.ops.guards)
    assert d.run_once() == 0
    view = ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vic")).json()
    assert view["state"] == "approved" and "broker down" in view["dispatches"][0]["reason"]
    sent: list = []
    assert dispatcher(ops, sent).run_once() == 1


def test_bad_requests_get_4xx_with_a_message(ops):
    cases = [
        ({"action": "relay_trip"}, 400, "name the meters"),
        ({"action": "relay_trip", "meters": ["nope"]}, 404, "not in the archive"),
        ({"action": "read", "areas": ["ZZ"]}, 404, "unknown areas"),
        (
            {"action": "read", "meters": ["B1-m00"], "params": {"quantities": ["x.y"]}},
            400,
            "unknown quantities",
        ),
        (
            {
                "action": "read",
                "meters": ["B1-m00"],
                "params": {"frozen": {"from": "2026-03-10", "to": "2026-01-01"}},
            },
            400,
            "before",
        ),
        ({"action": "archive_update", "meters": ["B1-m00"]}, 400, "not created"),
        ({"action": "explode", "meters": ["B1-m00"]}, 422, ""),
        ({"action": "read", "meters": ["B1-m00"], "valid_for": 10**9}, 400, "valid_for"),
    ]
    for body, status, text in cases:
        r = ops.client.post("/api/v1/commands", json=body, headers=ops.as_("olga"))
        assert r.status_code == status, (body, r.text)
        assert text in r.text
    assert ops.client.get("/api/v1/commands/nope", headers=ops.as_("vic")).status_code == 404


def test_every_command_action_is_audited_and_the_chain_holds(ops):
    cid = trip(ops, meters=A1_PLAIN[:12]).json()["id"]
    ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sam"))
    trip(ops, meters=[meter_id("A1", 0)])
    with reading(ops.engine) as conn:
        actions = [(e.actor, e.action) for e in audit.entries(conn, limit=1000)]
        assert audit.verify(conn).ok
        stored = conn.execute(select(readings)).all()
    assert ("olga", "command.create") in actions
    assert ("sam", "command.approve") in actions
    assert ("olga", "command.refused") in actions
    assert ("olga", "auth.login") in actions
    assert stored == []


def test_two_dispatchers_never_send_a_dispatch_twice(ops):
    for i in range(8):
        ops.command("olga", action="read", meters=[meter_id("A1", i), meter_id("B1", i % 3)])
    sent: list = []
    lock = threading.Lock()

    def publish(topic, payload):
        with lock:
            sent.append(decode(payload, Command).id)

    guards = ops.client.app.state.ops.guards
    pair = [Dispatcher(ops.engine, publish, ops.clock, guards) for _ in range(2)]
    threads = [threading.Thread(target=d.run_once) for d in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 16
