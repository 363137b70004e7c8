"""The console over HTTP without a browser: sessions, CSRF, scope, language and zone, pages."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from headend import audit
from headend.db import reading, writing
from headend.db.ops_tables import commands
from headend.web.session import CSRF_COOKIE, SESSION_COOKIE
from tests.headend.ops_support import add_user
from tests.web.conftest import Web
from tests.web.support import SHANGHAI, TestClient, csrf_of, found, sign_in


def _state(web: Web, command_id: str) -> str:
    with reading(web.engine) as conn:
        return str(
            conn.execute(select(commands.c.state).where(commands.c.id == command_id)).scalar_one()
        )


def _command_count(web: Web) -> int:
    with reading(web.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(commands)).scalar_one())


# --- sessions -----------------------------------------------------------------------------------


def test_pages_need_a_session_and_come_back_after_sign_in(web: Web) -> None:
    client = TestClient(web.app)
    r = client.get("/areas/A2?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/areas/A2%3Fx%3D1"
    page = client.get(r.headers["location"])
    r = client.post(
        "/login",
        data={
            "username": "vic",
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": "/areas/A2?x=1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/areas/A2?x=1"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "expires=" in cookie
    assert client.get("/areas/A2").status_code == 200


def test_wrong_password_is_refused_and_audited(web: Web) -> None:
    client = TestClient(web.app)
    page = client.get("/login")
    r = client.post(
        "/login", data={"username": "vic", "password": "nope", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 401 and 'role="alert"' in r.text
    assert SESSION_COOKIE not in client.cookies
    with reading(web.engine) as conn:
        assert audit.entries(conn, action="auth.login_failed")[-1].subject == "vic"


def test_sign_in_without_the_csrf_token_is_refused(web: Web) -> None:
    client = TestClient(web.app)
    client.get("/login")
    r = client.post("/login", data={"username": "vic", "password": "correct horse battery"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_off_site_next_is_ignored(web: Web) -> None:
    client = TestClient(web.app)
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": "vic",
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_posts_without_the_matching_csrf_token_change_nothing(web: Web) -> None:
    client = sign_in(web.app, "olga")
    before = _command_count(web)
    r = client.post("/meters/A2-m01/read", data={"csrf_token": "forged-" + "x" * 30})
    assert r.status_code == 403
    r = client.post("/meters/A2-m01/read", data={})
    assert r.status_code == 403
    assert _command_count(web) == before
    token = client.cookies[CSRF_COOKIE]
    r = client.post("/meters/A2-m01/read", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert r.status_code == 303 and _command_count(web) == before + 1


def test_the_command_page_polls_its_per_meter_table_too(web: Web) -> None:
    client = sign_in(web.app, "olga")
    token = client.cookies[CSRF_COOKIE]
    r = client.post("/meters/A2-m01/read", headers={"X-CSRF-Token": token}, follow_redirects=False)
    with reading(web.engine) as conn:
        newest = select(commands.c.id).order_by(commands.c.created_at.desc()).limit(1)
        command_id = conn.execute(newest).scalar_one()
    page = client.get(f"/commands/{command_id}").text
    assert f'hx-get="/commands/{command_id}/status?targets=1"' in page
    assert page.count('id="targets-wrap"') == 1 and 'data-meter="A2-m01"' in page
    live = client.get(f"/commands/{command_id}/status", params={"targets": 1}).text
    assert 'id="targets-wrap" hx-swap-oob="true"' in live and 'data-meter="A2-m01"' in live
    elsewhere = client.get(f"/commands/{command_id}/status").text  # e.g. a meter page's line
    assert "targets-wrap" not in elsewhere and "?targets=1" not in elsewhere
    assert r.status_code == 303


def test_sign_out_ends_the_session(web: Web) -> None:
    client = sign_in(web.app, "vic")
    token = client.cookies[CSRF_COOKIE]
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


# --- language and time zone ---------------------------------------------------------------------


def test_language_and_zone_are_per_user(web: Web) -> None:
    client = sign_in(web.app, "vic")
    page = client.get("/meters/A2-m01")
    local = web.now.astimezone(SHANGHAI)
    assert local.strftime("%Y-%m-%d %H:%M:%S") in page.text  # default zone: Asia/Shanghai
    r = client.post(
        "/prefs",
        data={
            "lang": "en",
            "zone": "UTC",
            "csrf_token": csrf_of(page.text),
            "next": "/meters/A2-m01",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/meters/A2-m01"
    page = client.get("/meters/A2-m01")
    assert 'lang="en"' in page.text and "Latest readings" in page.text
    assert web.now.strftime("%Y-%m-%d %H:%M:%S") in page.text  # now in UTC
    r = client.post("/prefs", data={"lang": "zh", "zone": "UTC", "csrf_token": csrf_of(page.text)})
    assert "最新数据" in client.get("/meters/A2-m01").text
    # the choice is vic's, not the browser's: a new session elsewhere has it, olga does not
    assert "最新数据" in sign_in(web.app, "vic").get("/meters/A2-m01").text
    other = sign_in(web.app, "olga")
    assert "Asia/Shanghai" in other.get("/", headers={"Accept-Language": "en"}).text


def test_a_bad_zone_keeps_the_previous_one(web: Web) -> None:
    client = sign_in(web.app, "vic")
    page = client.get("/")
    client.post(
        "/prefs", data={"lang": "en", "zone": "Mars/Olympus", "csrf_token": csrf_of(page.text)}
    )
    assert "Times are shown in Asia/Shanghai" in client.get("/").text


# --- scope and pages ----------------------------------------------------------------------------


def test_a_scoped_operator_sees_only_their_areas(web: Web) -> None:
    client = sign_in(web.app, "ola")  # operator of A2 only
    overview = client.get("/").text
    assert 'href="/areas/A2"' in overview and 'href="/areas/A1"' not in overview
    assert client.get("/areas/A1").status_code == 403
    assert client.get("/meters/A1-m01").status_code == 403
    assert (
        client.get("/commands/new", params={"action": "relay_trip", "area": "A1"}).status_code
        == 403
    )
    assert client.get("/audit").status_code == 403


def test_overview_shows_gateway_state_loss_and_alarms(web: Web) -> None:
    page = sign_in(web.app, "vic").get("/").text
    row = re.search(r'href="/areas/A2".*?</tr>', page, re.S)
    assert row is not None
    assert "online" in row.group(0) or "在线" in row.group(0)
    assert "%" in row.group(0)  # a loss rate and a collection rate
    assert re.search(r'class="badge bad">1<', row.group(0))  # the cover-open event
    tile = re.search(r'id="pass-rate"><span class="big">(\d+) / (\d+)</span>', page)
    assert tile is not None and int(tile.group(1)) <= int(tile.group(2))  # 台区线损合格率


def test_area_page_has_meters_relay_states_and_the_loss_series(web: Web) -> None:
    client = sign_in(web.app, "vic")
    token = client.cookies[CSRF_COOKIE]
    client.post("/prefs", data={"lang": "en", "zone": "Asia/Shanghai", "csrf_token": token})
    page = client.get("/areas/A2").text
    assert page.count('href="/meters/A2-m0') >= 5
    assert "closed (power on)" in page
    data = json.loads(found(r'id="loss-data">(.*?)</script>', page))
    assert len(data["days"]) == len(data["rate"]) >= 5
    rates = [r for r in data["rate"] if r is not None]
    assert rates == sorted(rates) and rates[0] > 4  # percent, rising as seeded
    assert "Not available yet" not in page


def test_missing_things_are_html_pages_not_tracebacks(web: Web) -> None:
    client = sign_in(web.app, "vic")
    r = client.get("/meters/NOPE")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "NOPE" in r.text and "Traceback" not in r.text
    assert client.get("/commands/none").status_code == 404
    assert client.get("/static/../session.py").status_code == 404


# --- commands -----------------------------------------------------------------------------------


def test_the_confirmation_lists_the_guard_rails_and_refuses_keep_power(web: Web) -> None:
    client = sign_in(web.app, "olga")
    page = client.get("/commands/new", params={"action": "relay_trip", "area": "A1"}).text
    rules = dict(re.findall(r'data-rule="([^"]+)" data-status="([^"]+)"', page))
    assert rules["keep_power"] == "refuses" and rules["pause"] == "ok"
    assert rules["window"] == "ok" and rules["hourly_limit.area"] == "ok"
    assert 'data-outcome="refuse"' in page and 'id="confirm-send"' not in page
    page = client.get("/commands/new", params={"action": "relay_trip", "area": "A2"}).text
    assert 'data-outcome="needs_approval"' in page  # 6 meters > 3
    assert re.search(r'data-rule="supervisor_approval" data-status="needs_approval"', page)
    read = client.get("/commands/new", params={"action": "read", "meter": "A2-m01"}).text
    assert 'data-outcome="allow"' in read and "data-rule=" not in read


def test_outside_the_window_the_confirmation_says_why(web: Web) -> None:
    web.clock.advance(10 * 3600)  # 20:00 in Shanghai
    page = (
        sign_in(web.app, "olga")
        .get("/commands/new", params={"action": "relay_trip", "meter": "A2-m01"})
        .text
    )
    assert 'data-rule="window.hours" data-status="refuses"' in page


def test_bulk_disconnect_waits_for_a_second_user_a_supervisor(web: Web) -> None:
    olga, sam, vic = (sign_in(web.app, n) for n in ("olga", "sam", "vic"))
    page = olga.get("/commands/new", params={"action": "relay_trip", "area": "A2"}).text
    r = olga.post(
        "/commands",
        data={"action": "relay_trip", "area": "A2", "note": "arrears", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    command_id = r.headers["location"].rsplit("/", 1)[1]
    assert _state(web, command_id) == "awaiting_approval"
    queue = sam.get("/commands").text
    assert f'id="approve-{command_id}"' in queue
    assert f'id="approve-{command_id}"' not in olga.get("/commands").text
    assert f'id="approve-{command_id}"' not in vic.get("/commands").text
    # the creator cannot approve their own request, a viewer cannot approve at all
    token = csrf_of(olga.get("/commands").text)
    assert (
        olga.post(f"/commands/{command_id}/approve", data={"csrf_token": token}).status_code == 403
    )
    token = csrf_of(vic.get("/").text)
    assert (
        vic.post(f"/commands/{command_id}/approve", data={"csrf_token": token}).status_code == 403
    )
    assert _state(web, command_id) == "awaiting_approval"
    r = sam.post(
        f"/commands/{command_id}/approve",
        data={"csrf_token": csrf_of(queue)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and _state(web, command_id) == "approved"
    with reading(web.engine) as conn:
        approvals = audit.entries(conn, action="command.approve", subject=command_id)
    assert [e.actor for e in approvals] == ["sam"]


def test_the_status_fragment_polls_until_the_command_is_final(web: Web) -> None:
    olga = sign_in(web.app, "olga")
    page = olga.get("/meters/A2-m01").text
    fragment = olga.post(
        "/meters/A2-m01/read", data={"csrf_token": csrf_of(page)}, headers={"HX-Request": "true"}
    ).text
    command_id = found(r'data-command="([^"]+)"', fragment)
    assert 'hx-trigger="every 2s"' in fragment
    olga.post(f"/commands/{command_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert _state(web, command_id) == "cancelled"
    status = olga.get(f"/commands/{command_id}/status").text
    assert 'data-state="cancelled"' in status and "hx-trigger" not in status


def test_viewers_get_no_command_buttons_and_cannot_post_them(web: Web) -> None:
    vic = sign_in(web.app, "vic")
    page = vic.get("/meters/A2-m01").text
    assert 'id="read-now"' not in page and 'id="btn-relay_trip"' not in page
    before = _command_count(web)
    r = vic.post(
        "/commands", data={"action": "relay_trip", "meter": "A2-m01", "csrf_token": csrf_of(page)}
    )
    assert r.status_code == 403 and _command_count(web) == before


# --- audit, notifications, prepay ---------------------------------------------------------------


def test_audit_page_and_chain_verification(web: Web) -> None:
    ada, sam = sign_in(web.app, "ada"), sign_in(web.app, "sam")
    page = ada.get("/audit").text
    assert "auth.login" in page and 'hx-get="/audit/verify"' in page
    verify = ada.get("/audit/verify").text
    assert 'data-ok="true"' in verify
    assert 'hx-get="/audit/verify"' not in sam.get("/audit").text
    assert sam.get("/audit/verify").status_code == 403
    assert sign_in(web.app, "sid").get("/audit").status_code == 403  # scoped supervisor
    assert sign_in(web.app, "olga").get("/audit").status_code == 403
    with writing(web.engine) as conn:  # tamper with a row behind the triggers' back
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    broken = ada.get("/audit/verify").text
    assert 'data-ok="false"' in broken and "#2" in broken


def test_meter_page_shows_the_account_balance_and_notifications_log(web: Web) -> None:
    from headend.db.prepay_tables import notifications, prepay_account_points
    from headend.prepay import store

    now = web.now
    with writing(web.engine) as conn:
        store.create_account(
            conn, "ACC-1", mode="prepaid", name="Li", area="A2", actor="t", now=now
        )
        conn.execute(
            prepay_account_points.insert().values(
                account="ACC-1", point="P-A2-m01", valid_from=now - timedelta(days=30)
            )
        )
        store.post(conn, "ACC-1", "topup", 50_000_000, now, "pay-1", actor="t", now=now)
        conn.execute(
            notifications.insert().values(
                account="ACC-1", dedupe="d1", template="low_balance", language="zh",
                target="mailto://li@…", url="mailto://li:secret@x", title="余额不足", body="…",
                state="sent", attempts=1, not_before=now, created_at=now, sent_at=now,
            )
        )  # fmt: skip
    vic = sign_in(web.app, "vic")
    page = vic.get("/meters/A2-m01").text
    assert re.search(r'id="balance">50(\.0+)?<', page) and "pay-1" in page and "余额不足" in page
    log = vic.get("/notifications").text
    assert "ACC-1" in log and "secret" not in log
    assert "ACC-1" in sign_in(web.app, "sid").get("/notifications").text  # A2's supervisor
    add_user(web.engine, "bea", "viewer", ["B1"])
    assert "ACC-1" not in sign_in(web.app, "bea").get("/notifications").text
    assert Decimal(50) == Decimal(found(r'id="balance">([0-9.]+)<', page))
