"""Log-in (OAuth2 password flow), bearer tokens (expiry, revocation), failed log-ins audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headend import audit
from headend.auth.errors import Unauthenticated
from headend.auth.passwords import hash_password, verify_password
from headend.auth.tokens import TokenService
from headend.db import reading
from headend.db.errors import InvalidRequest
from tests.headend.ops_support import (  # noqa: F401
    PASSWORD,
    cheap_hashes_fixture,
    ops_fixture,
)


def login(ops, name, password=PASSWORD):
    return ops.client.post("/api/v1/auth/token", data={"username": name, "password": password})


def test_login_gives_a_bearer_token_that_names_role_and_scope(ops):
    r = login(ops, "ola")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["role"] == "operator"
    assert body["areas"] == ["A2"]
    me = ops.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json() == {"name": "ola", "role": "operator", "areas": ["A2"]}


@pytest.mark.parametrize(
    ("name", "password", "reason"),
    [
        ("olga", "wrong password!", "wrong password"),
        ("nobody", PASSWORD, "unknown user"),
    ],
)
def test_failed_logins_are_refused_and_audited(ops, name, password, reason):
    r = login(ops, name, password)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "wrong user name or password" in r.json()["detail"]
    with reading(ops.engine) as conn:
        entry = audit.entries(conn, action="auth.login_failed")[-1]
    assert entry.subject == name and reason in entry.detail


def test_requests_without_or_with_a_bad_token_get_401(ops):
    assert ops.client.get("/api/v1/commands").status_code == 401
    r = ops.client.get("/api/v1/commands", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    forged = TokenService("x" * 40).issue("ada", 0)[0]  # signed with another secret
    r = ops.client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_tokens_expire():
    service = TokenService("k" * 40, minutes=60)
    old, expires = service.issue("olga", 0, now=datetime.now(UTC) - timedelta(hours=2))
    assert expires < datetime.now(UTC)
    with pytest.raises(Unauthenticated, match="expired"):
        service.check(old)
    fresh, _ = service.issue("olga", 3)
    assert service.check(fresh).version == 3


def test_an_expired_token_is_refused_by_the_api(ops):
    ops.as_("vic")  # builds the app's token service
    tokens = ops.client.app.state.ops.tokens
    old, _ = tokens.issue("vic", 0, now=datetime.now(UTC) - timedelta(days=1))
    r = ops.client.get("/api/v1/commands", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_disabling_a_user_revokes_their_tokens_at_once(ops):
    headers = ops.as_("olga")
    assert ops.client.get("/api/v1/commands", headers=headers).status_code == 200
    assert ops.client.delete("/api/v1/users/olga", headers=ops.as_("ada")).status_code == 200
    r = ops.client.get("/api/v1/commands", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert login(ops, "olga").status_code == 401


def test_changing_ones_password_revokes_old_tokens(ops):
    headers = ops.as_("vic")
    bad = ops.client.post(
        "/api/v1/auth/password", json={"current": "nope", "new": "x" * 12}, headers=headers
    )
    assert bad.status_code == 401
    short = ops.client.post(
        "/api/v1/auth/password", json={"current": PASSWORD, "new": "short"}, headers=headers
    )
    assert short.status_code == 400 and "at least" in short.json()["detail"]
    ok = ops.client.post(
        "/api/v1/auth/password",
        json={"current": PASSWORD, "new": "a much longer secret"},
        headers=headers,
    )
    assert ok.status_code == 204
    assert ops.client.get("/api/v1/commands", headers=headers).status_code == 401
    assert login(ops, "vic", "a much longer secret").status_code == 200


def test_role_changes_take_effect_without_a_new_token(ops):
    headers = ops.as_("vic")
    assert ops.command("vic", action="read", meters=["B1-m00"]).status_code == 403
    ops.client.patch("/api/v1/users/vic", json={"role": "operator"}, headers=ops.as_("ada"))
    r = ops.client.post(
        "/api/v1/commands", json={"action": "read", "meters": ["B1-m00"]}, headers=headers
    )
    assert r.status_code == 201


def test_passwords_are_argon2_hashed_with_a_policy():
    digest = hash_password("long enough password")
    assert digest.startswith("$argon2id$")
    assert verify_password(digest, "long enough password")
    assert not verify_password(digest, "long enough passworD")
    assert not verify_password(None, "long enough password")
    assert not verify_password("not a hash", "long enough password")
    with pytest.raises(InvalidRequest, match="at least"):
        hash_password("short")


def test_a_short_secret_is_refused_and_none_gives_a_random_one():
    with pytest.raises(ValueError, match="at least"):
        TokenService("short")
    a, b = TokenService(None), TokenService(None)
    token, _ = a.issue("olga", 0)
    with pytest.raises(Unauthenticated):
        b.check(token)
