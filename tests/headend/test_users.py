"""User management: admins only; scopes validated; the last admin is protected; audited."""

from __future__ import annotations

import pytest

from headend import audit
from headend.db import reading
from tests.headend.ops_support import (  # noqa: F401
    PASSWORD,
    cheap_hashes_fixture,
    ops_fixture,
)

NEW = {"name": "stationop", "role": "operator", "password": PASSWORD, "areas": ["B1"]}


def test_an_admin_creates_lists_changes_and_disables_users(ops):
    admin = ops.as_("ada")
    r = ops.client.post("/api/v1/users", json=NEW, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["areas"] == ["B1"] and "password" not in r.text
    assert ops.client.post("/api/v1/users", json=NEW, headers=admin).status_code == 409
    names = [u["name"] for u in ops.client.get("/api/v1/users", headers=admin).json()]
    assert "stationop" in names and names == sorted(names)
    r = ops.client.patch("/api/v1/users/stationop", json={"areas": None}, headers=admin)
    assert r.json()["areas"] is None
    r = ops.client.patch("/api/v1/users/stationop", json={"role": "supervisor"}, headers=admin)
    assert r.json()["role"] == "supervisor" and r.json()["areas"] is None
    assert ops.client.delete("/api/v1/users/stationop", headers=admin).json()["disabled"] is True
    assert ops.client.get("/api/v1/users/stationop", headers=admin).json()["disabled"] is True
    with reading(ops.engine) as conn:
        actions = [e.action for e in audit.entries(conn, subject="stationop")]
    assert actions == ["user.create", "user.change", "user.change", "user.change"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({**NEW, "areas": ["ZZ"]}, 400, "unknown areas"),
        ({**NEW, "areas": []}, 400, "at least one area"),
        ({**NEW, "role": "admin"}, 400, "cannot be scoped"),
        ({**NEW, "role": "root"}, 422, ""),
        ({**NEW, "name": "bad name!"}, 400, "user names"),
        ({**NEW, "password": "short"}, 400, "at least"),
        ({**NEW, "extra": 1}, 422, ""),
    ],
)
def test_bad_user_requests_get_a_clear_4xx(ops, body, status, text):
    r = ops.client.post("/api/v1/users", json=body, headers=ops.as_("ada"))
    assert r.status_code == status, r.text
    assert text in r.text


def test_the_last_admin_cannot_be_disabled_or_demoted(ops):
    admin = ops.as_("ada")
    r = ops.client.delete("/api/v1/users/ada", headers=admin)
    assert r.status_code == 409 and "last active admin" in r.json()["detail"]
    assert (
        ops.client.patch("/api/v1/users/ada", json={"role": "viewer"}, headers=admin).status_code
        == 409
    )
    ops.client.post(
        "/api/v1/users", json={"name": "ada2", "role": "admin", "password": PASSWORD}, headers=admin
    )
    assert (
        ops.client.patch("/api/v1/users/ada", json={"role": "viewer"}, headers=admin).status_code
        == 200
    )


def test_unknown_users_are_404(ops):
    admin = ops.as_("ada")
    assert ops.client.get("/api/v1/users/ghost", headers=admin).status_code == 404
    assert (
        ops.client.patch("/api/v1/users/ghost", json={"disabled": True}, headers=admin).status_code
        == 404
    )
    assert ops.client.patch("/api/v1/users/ada", json={}, headers=admin).status_code == 400
