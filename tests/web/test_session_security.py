"""The console's sign-in throttling message and CSRF tokens bound to the session."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from headend.db import reading
from headend.db.ops_tables import commands
from headend.web.session import CSRF_COOKIE, SESSION_COOKIE
from taiqu.clock import ManualClock
from tests.web.conftest import Web
from tests.web.support import TestClient, csrf_of, sign_in


def _plant(client: TestClient, token: str) -> None:
    """Replace the browser's CSRF cookie (what a sibling sub-domain could do)."""
    (old,) = [c for c in client.cookies.jar if c.name == CSRF_COOKIE]
    client.cookies.delete(CSRF_COOKIE)
    client.cookies.set(CSRF_COOKIE, token, domain=old.domain, path=old.path)


def _commands(web: Web) -> int:
    with reading(web.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(commands)).scalar_one())


def test_the_sign_in_page_says_the_user_is_locked_and_the_right_password_waits(web: Web) -> None:
    web.app.state.wall_clock = ManualClock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))
    web.app.state.ops = None
    client = TestClient(web.app)
    for _ in range(30):
        page = client.get("/login")
        client.post(
            "/login",
            data={"username": "vic", "password": "wrong guess!", "csrf_token": csrf_of(page.text)},
        )
        web.app.state.wall_clock.advance(400)  # past every back-off, never past a lockout
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": "vic",
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert r.status_code == 429 and SESSION_COOKIE not in client.cookies
    assert 'id="login-throttled"' in r.text and "min" in r.text


def test_a_csrf_token_from_another_session_is_refused(web: Web) -> None:
    mallory = sign_in(web.app, "otto")
    victim = sign_in(web.app, "olga")
    planted = mallory.cookies[CSRF_COOKIE]
    _plant(victim, planted)
    before = _commands(web)
    r = victim.post("/meters/A2-m01/read", data={"csrf_token": planted})
    assert r.status_code == 403 and _commands(web) == before
    forged = "n" * 32 + "." + "m" * 43  # a well-formed token with a made-up MAC
    _plant(victim, forged)
    assert victim.post("/meters/A2-m01/read", data={"csrf_token": forged}).status_code == 403
    page = victim.get("/meters/A2-m01")  # the page re-issues a token bound to this session
    token = csrf_of(page.text)
    assert token != forged and victim.cookies[CSRF_COOKIE] == token
    r = victim.post("/meters/A2-m01/read", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and _commands(web) == before + 1


def test_signing_in_replaces_the_anonymous_token(web: Web) -> None:
    client = TestClient(web.app)
    anonymous = csrf_of(client.get("/login").text)
    client.post(
        "/login",
        data={"username": "vic", "password": "correct horse battery", "csrf_token": anonymous},
        follow_redirects=False,
    )
    assert client.cookies[CSRF_COOKIE] != anonymous
    r = client.post("/prefs", data={"lang": "en", "csrf_token": anonymous})
    assert r.status_code == 403


def test_the_overview_shows_a_gateway_running_a_forged_archive(web: Web) -> None:
    from sqlalchemy import update

    from headend.archive import push
    from headend.commands.signing import NoSigner
    from headend.db import writing
    from headend.db.tables import gateway_state

    with writing(web.engine) as conn:
        push.refresh(conn, "gw2", web.now, force=True, signer=NoSigner())  # issued: version 1
        conn.execute(
            update(gateway_state)
            .where(gateway_state.c.gateway == "gw2")
            .values(archive_version=999)
        )
    client = sign_in(web.app, "vic")
    page = client.get("/").text
    assert 'id="archive-alerts"' in page and 'data-kind="archive.forged_version"' in page
    assert 'data-gateway="gw2"' in page and "999" in page
    with writing(web.engine) as conn:
        conn.execute(
            update(gateway_state).where(gateway_state.c.gateway == "gw2").values(archive_version=1)
        )
    assert 'id="archive-alerts"' not in client.get("/").text
