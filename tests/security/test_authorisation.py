"""Negative authorisation on every endpoint that reads or commands meters.

``tests/headend/test_scoping.py`` covers the operations endpoints (users, audit, command list and
creation by role, guard rails, cancel/approve in scope).  This adds: the meter, reading, area,
gateway, event and analytics endpoints for area-scoped users (viewer ``vera`` and operator ``ola``,
both scoped to area A2); every command action refused to viewers and to an operator outside their
area; and forged, tampered, ``alg: none``, wrong-issuer and expired tokens on every endpoint.
Archive: areas A1 (gateway gw1), A2 (gw2), B1 (gw3); see ``tests/headend/ops_support.py``.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import insert

from headend.app import create_app
from headend.auth import passwords
from headend.config import DatabaseSettings, Settings
from headend.db import make_engine, writing
from headend.db.migrate import upgrade
from headend.db.tables import gateways
from protocols.uplink import CommandAction
from taiqu.clock import ManualClock
from tests.headend.ops_support import (
    LAYOUT,
    SINCE,
    TUESDAY_10,
    USERS,
    Ops,
    add_user,
    meter_id,
    seed_archive,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SECRET = "s" * 64
OTHER = meter_id("A1", 1)  # a meter outside A2
OWN = meter_id("A2", 1)
# (path, what an A2-scoped user gets: 403 refused / 404 hidden)
OUT_OF_AREA_READS = [
    "/api/v1/meters?area=A1",
    f"/api/v1/meters/{OTHER}",
    f"/api/v1/meters/{OTHER}/history",
    f"/api/v1/meters/{OTHER}/readings",
    f"/api/v1/meters/{OTHER}/readings?format=csv",
    "/api/v1/areas/A1",
    "/api/v1/areas/A1/history",
    "/api/v1/areas/A1/latest",
    "/api/v1/events?area=A1",
    "/api/v1/gateways/gw1",
    "/api/v1/gateways/gw1/history",
    "/api/v1/gateways/gw1/sessions",
    "/api/v1/analytics/lineloss?area=A1",
    "/api/v1/analytics/areas/A1/trend",
    "/api/v1/analytics/areas/A1/target",
    "/api/v1/analytics/areas/A1/suspects",
    "/api/v1/analytics/areas/A1/quality",
    f"/api/v1/analytics/meters/{OTHER}/inspections",
]
IN_AREA_READS = [p.replace("A1", "A2").replace("gw1", "gw2") for p in OUT_OF_AREA_READS]
EVERY_METER_ENDPOINT = [
    ("get", "/api/v1/meters", None),
    ("get", f"/api/v1/meters/{OWN}/readings", None),
    ("get", "/api/v1/areas/A2/latest", None),
    ("get", "/api/v1/events", None),
    ("get", "/api/v1/gateways", None),
    ("get", "/api/v1/analytics/areas/A2/suspects", None),
    ("get", "/api/v1/commands", None),
    ("post", "/api/v1/commands", {"action": "read", "meters": [OWN]}),
]


@pytest.fixture(scope="module")
def ops(tmp_path_factory) -> Iterator[Ops]:
    """The app on a seeded SQLite database (module-wide: these tests only read or are refused)."""
    old = os.environ.get("TAIQU_HEADEND_SECRET")
    os.environ["TAIQU_HEADEND_SECRET"] = SECRET
    old_hasher = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    passwords._dummy_hash.cache_clear()
    db = DatabaseSettings(url=f"sqlite:///{tmp_path_factory.mktemp('authz') / 'headend.db'}")
    engine = make_engine(db)
    upgrade(engine)
    seed_archive(engine)
    with writing(engine) as conn:
        conn.execute(
            insert(gateways),
            [{"id": g, "name": g, "valid_from": SINCE} for g, _ in LAYOUT.values()],
        )
    for name, (role, scope) in USERS.items():
        add_user(engine, name, role, scope)
    app = create_app(Settings(database=db), engine=engine, ingest=False)
    app.state.clock = ManualClock(TUESDAY_10)
    with TestClient(app) as client:
        yield Ops(client, app.state.clock, engine)
    engine.dispose()
    passwords._hasher = old_hasher
    passwords._dummy_hash.cache_clear()
    if old is None:
        os.environ.pop("TAIQU_HEADEND_SECRET", None)
    else:
        os.environ["TAIQU_HEADEND_SECRET"] = old


# -- area scope ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", OUT_OF_AREA_READS)
@pytest.mark.parametrize("who", ["vera", "ola"])
def test_scoped_users_cannot_see_another_areas_meters(ops, who, path) -> None:
    r = ops.client.get(path, headers=ops.as_(who))
    assert r.status_code in (403, 404), (path, r.status_code, r.text[:200])
    assert OTHER not in r.text


@pytest.mark.parametrize("path", IN_AREA_READS)
def test_the_same_reads_inside_their_area_are_allowed(ops, path) -> None:
    """The refusals above are scope, not a broken endpoint."""
    r = ops.client.get(path, headers=ops.as_("vera"))
    assert r.status_code == 200, (path, r.text[:200])


def test_lists_hold_only_their_area(ops) -> None:
    vera = ops.as_("vera")
    meters = {m["id"] for m in ops.client.get("/api/v1/meters", headers=vera).json()}
    assert meters and all(m.startswith("A2-") for m in meters)
    areas = {a["id"] for a in ops.client.get("/api/v1/areas", headers=vera).json()}
    assert areas == {"A2"}
    gateways = {g["id"] for g in ops.client.get("/api/v1/gateways", headers=vera).json()}
    assert gateways <= {"gw2"}
    fleet = {m["id"] for m in ops.client.get("/api/v1/meters", headers=ops.as_("vic")).json()}
    assert OTHER in fleet


@pytest.mark.parametrize("action", [a.value for a in CommandAction])
def test_viewers_cannot_command(ops, action) -> None:
    for who in ("vic", "vera"):
        r = ops.command(who, action=action, meters=[OWN])
        assert r.status_code == 403, (who, action, r.text)


PARAMS = {"backfill": {"from": "2026-03-01", "to": "2026-03-02"}}
CREATABLE = [a.value for a in CommandAction if a is not CommandAction.ARCHIVE_UPDATE]


@pytest.mark.parametrize("action", CREATABLE)
def test_a_scoped_operator_cannot_command_another_area(ops, action) -> None:
    params = PARAMS.get(action, {})
    if action in ("read", "relay_trip", "backfill"):  # the refusals below are scope, not role
        assert ops.command("ola", action=action, meters=[OWN], params=params).status_code == 201
    for body in (
        {"meters": [OTHER]},
        {"meters": [OWN, OTHER]},
        {"areas": ["A1"]},
        {"areas": ["A2", "B1"]},
    ):
        r = ops.command("ola", action=action, params=params, **body)
        assert r.status_code == 403, (action, body, r.text)


def test_a_scoped_operator_cannot_record_an_inspection_elsewhere(ops) -> None:
    r = ops.client.post(
        f"/api/v1/analytics/meters/{OTHER}/inspections",
        json={"result": "tamper_found", "note": "x"},
        headers=ops.as_("ola"),
    )
    assert r.status_code in (403, 404, 422), r.text
    assert r.status_code != 422 or "scope" in r.text or OTHER not in r.text


# -- tokens --------------------------------------------------------------------------------------
def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(ops: Ops) -> dict[str, str]:
    """Tokens that must all be refused, each next to a valid one for the admin."""
    good = ops.as_("ada")["Authorization"].split()[1]
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    now = datetime.now(UTC)
    fresh = {
        **claims,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    return {
        "wrong secret": jwt.encode(fresh, "x" * 40, algorithm="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, signature kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
        "tampered payload": f"{header}.{_b64({**claims, 'sub': 'olga'})}.{signature}",
        "tampered expiry": f"{header}.{_b64({**claims, 'exp': claims['exp'] + 86400})}.{signature}",
        "HS384 with the secret": jwt.encode(fresh, SECRET, algorithm="HS384"),
        "wrong issuer": jwt.encode({**fresh, "iss": "someone-else"}, SECRET, algorithm="HS256"),
        "no version": jwt.encode(
            {k: v for k, v in fresh.items() if k != "ver"}, SECRET, algorithm="HS256"
        ),
        "expired": jwt.encode(
            {
                **claims,
                "iat": int((now - timedelta(hours=3)).timestamp()),
                "exp": int((now - timedelta(hours=2)).timestamp()),
            },
            SECRET,
            algorithm="HS256",
        ),
        "unknown user": jwt.encode({**fresh, "sub": "mallory"}, SECRET, algorithm="HS256"),
        "stale version": jwt.encode({**fresh, "ver": claims["ver"] - 1}, SECRET, algorithm="HS256"),
        "empty": "",
        "garbage": "a.b.c",
    }


@pytest.mark.parametrize(("method", "path", "body"), EVERY_METER_ENDPOINT)
def test_forged_tampered_and_expired_tokens_are_refused(ops, method, path, body) -> None:
    kwargs = {"json": body} if body is not None else {}
    call = getattr(ops.client, method)
    assert call(path, **kwargs).status_code == 401  # no token at all
    good = call(path, headers=ops.as_("ada"), **kwargs)
    assert good.status_code < 400, good.text  # the admin's own token works
    for name, token in bad_tokens(ops).items():
        r = call(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        assert r.status_code == 401, (name, r.status_code, r.text[:200])
        r = call(path, headers={"Authorization": f"Basic {token}"}, **kwargs)
        assert r.status_code == 401, (name, "basic", r.status_code)
