"""Role and area-scope negatives (and positives) on every operations endpoint."""

from __future__ import annotations

import dataclasses

import pytest

from headend.guards import GuardSettings
from tests.headend.ops_support import (  # noqa: F401
    PASSWORD,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

ROLES_BELOW = {
    "viewer": [],
    "operator": ["vic"],
    "supervisor": ["vic", "olga"],
    "admin": ["vic", "olga", "sam"],
}
DAY = "/api/v1/commands/guard-rails/extreme-weather/2026-03-11"
# (method, path, json, minimum role, whether an area-scoped user of that role is refused)
ENDPOINTS = [
    ("get", "/api/v1/users", None, "admin", False),
    (
        "post",
        "/api/v1/users",
        {"name": "x1", "role": "viewer", "password": PASSWORD},
        "admin",
        False,
    ),
    ("get", "/api/v1/users/vic", None, "admin", False),
    ("patch", "/api/v1/users/vic", {"disabled": False}, "admin", False),
    ("delete", "/api/v1/users/vera", None, "admin", False),
    ("get", "/api/v1/audit", None, "supervisor", True),
    ("get", "/api/v1/audit/verify", None, "admin", False),
    ("put", "/api/v1/commands/guard-rails/pause", {"paused": False}, "supervisor", True),
    ("put", DAY, {"reason": "heat"}, "supervisor", True),
    ("get", "/api/v1/commands/guard-rails", None, "viewer", False),
    ("get", "/api/v1/commands", None, "viewer", False),
    ("post", "/api/v1/commands", {"action": "read", "meters": ["A2-m00"]}, "operator", False),
    ("get", "/api/v1/auth/me", None, "viewer", False),
]
SCOPED = {"viewer": "vera", "operator": "ola", "supervisor": "sid"}
UNSCOPED = {"viewer": "vic", "operator": "olga", "supervisor": "sam", "admin": "ada"}


@pytest.mark.parametrize(("method", "path", "body", "role", "fleet_only"), ENDPOINTS)
def test_every_endpoint_refuses_lower_roles_and_anonymous(
    ops, method, path, body, role, fleet_only
):
    kwargs = {"json": body} if body is not None else {}
    assert getattr(ops.client, method)(path, **kwargs).status_code == 401
    for who in ROLES_BELOW[role]:
        r = getattr(ops.client, method)(path, headers=ops.as_(who), **kwargs)
        assert r.status_code == 403, (who, r.text)
        assert f"needs the {role} role" in r.text
    r = getattr(ops.client, method)(path, headers=ops.as_(UNSCOPED[role]), **kwargs)
    assert r.status_code < 300, r.text
    if role in SCOPED:
        r = getattr(ops.client, method)(path, headers=ops.as_(SCOPED[role]), **kwargs)
        assert (r.status_code == 403) is fleet_only, r.text


def test_a_station_operator_commands_only_their_area(ops):
    r = ops.command("ola", action="read", meters=[meter_id("A1", 1)])
    assert r.status_code == 403 and r.json()["detail"]["rule"] == "scope"
    r = ops.command("ola", action="read", meters=[meter_id("A2", 1), meter_id("B1", 0)])
    assert r.status_code == 403 and "B1" in r.json()["detail"]["message"]
    assert ops.command("ola", action="read", areas=["A1"]).status_code == 403
    assert ops.command("ola", action="read", areas=["A2"]).status_code == 201
    assert ops.command("ola", action="relay_trip", meters=[meter_id("A2", 1)]).status_code == 201


def test_scoped_users_see_only_commands_wholly_inside_their_areas(ops):
    a1 = ops.command("olga", action="read", meters=[meter_id("A1", 1)]).json()["id"]
    mixed = ops.command(
        "olga", action="read", meters=[meter_id("A1", 2), meter_id("A2", 2)]
    ).json()["id"]
    a2 = ops.command("olga", action="read", meters=[meter_id("A2", 3)]).json()["id"]
    seen = {c["id"] for c in ops.client.get("/api/v1/commands", headers=ops.as_("vera")).json()}
    assert seen == {a2}
    everything = {
        c["id"] for c in ops.client.get("/api/v1/commands", headers=ops.as_("vic")).json()
    }
    assert {a1, mixed, a2} <= everything
    for cid in (a1, mixed):
        assert ops.client.get(f"/api/v1/commands/{cid}", headers=ops.as_("vera")).status_code == (
            404
        )
        assert (
            ops.client.post(f"/api/v1/commands/{cid}/cancel", headers=ops.as_("ola")).status_code
            == 404
        )
    assert ops.client.get(f"/api/v1/commands/{a2}", headers=ops.as_("vera")).status_code == 200
    assert (
        ops.client.post(f"/api/v1/commands/{a2}/cancel", headers=ops.as_("ola")).status_code == 200
    )


def test_a_scoped_supervisor_approves_only_inside_their_areas(ops):
    ops.as_("ola")  # builds the app's settings
    # A2 has only 5 meters: lower the threshold so the request needs approval
    st = ops.client.app.state
    st.ops = dataclasses.replace(st.ops, guards=GuardSettings(supervisor_threshold=2))
    cid = ops.command(
        "ola", action="relay_trip", meters=[meter_id("A2", i) for i in range(3)]
    ).json()["id"]
    r = ops.client.post(f"/api/v1/commands/{cid}/approve", headers=ops.as_("sid"))
    assert r.status_code == 200, r.text
    other = ops.command(
        "olga", action="relay_trip", meters=[meter_id("A1", i) for i in range(1, 4)]
    ).json()["id"]
    assert (
        ops.client.post(f"/api/v1/commands/{other}/approve", headers=ops.as_("sid")).status_code
        == 404
    )


def test_guard_rail_counts_are_scoped(ops):
    ops.command("olga", action="relay_trip", meters=[meter_id("A1", 1)])
    ops.command("olga", action="relay_trip", meters=[meter_id("A2", 1)])
    mine = ops.client.get("/api/v1/commands/guard-rails", headers=ops.as_("vera")).json()
    assert mine["disconnects_last_hour"] == {"fleet": None, "by_area": {"A2": 1}}
    fleet = ops.client.get("/api/v1/commands/guard-rails", headers=ops.as_("vic")).json()
    assert fleet["disconnects_last_hour"] == {"fleet": 2, "by_area": {"A1": 1, "A2": 1}}
