"""Log-in throttling (``headend.auth.throttle``): back-off, lockout, per address, audited.

Before it, 30 wrong passwords and then the right one logged in, and 100 guesses took 13.7 s.
The wall clock the throttle reads is a manual one here, so no test sleeps.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from headend import audit
from headend.auth import throttle
from headend.config import ThrottleSettings
from headend.db import reading
from taiqu.clock import ManualClock
from tests.headend.ops_support import (  # noqa: F401
    PASSWORD,
    TestClient,
    cheap_hashes_fixture,
    ops_fixture,
)

WALL = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
DEFAULTS = ThrottleSettings()


@pytest.fixture
def wall(ops) -> ManualClock:
    clock = ManualClock(WALL)
    ops.client.app.state.wall_clock = clock
    ops.client.app.state.ops = None  # rebuilt with this wall clock
    return clock


def login(client, name, password=PASSWORD):
    return client.post("/api/v1/auth/token", data={"username": name, "password": password})


def audited(ops, action):
    with reading(ops.engine) as conn:
        return audit.entries(conn, action=action)


def test_thirty_wrong_then_right_stays_locked_until_the_lockout_ends(ops, wall):
    statuses = []
    for _ in range(30):  # a patient attacker: waits out every back-off, not a lockout
        r = login(ops.client, "olga", "wrong password!")
        statuses.append(r.status_code)
        slowed = r.status_code == 429 and "slowed" in r.json()["detail"]
        wall.advance(int(r.headers["retry-after"]) if slowed else 1)
    r = login(ops.client, "olga")
    assert r.status_code == 429, r.text  # the right password does not get in while locked
    assert "locked" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
    assert statuses[:5] == [401] * 5 and 429 in statuses
    checked = [e for e in audited(ops, "auth.login_failed") if e.subject == "olga"]
    assert len(checked) == DEFAULTS.lockout_failures  # guesses past the lockout: never checked
    (locked,) = [e for e in audited(ops, "auth.locked") if e.subject == "user:olga"]
    assert '"scope":"user"' in locked.detail
    users = {u["name"]: u for u in ops.client.get("/api/v1/users", headers=ops.as_("ada")).json()}
    assert users["olga"]["locked_until"] is not None and users["otto"]["locked_until"] is None
    wall.advance(DEFAULTS.lockout_minutes * 60)
    assert login(ops.client, "olga").status_code == 200  # temporary: over after its time


def test_back_off_doubles_after_the_free_failures(ops, wall):
    for _ in range(DEFAULTS.free_failures):
        assert login(ops.client, "otto", "wrong password!").status_code == 401
    r = login(ops.client, "otto")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    wall.advance(1)
    assert login(ops.client, "otto", "wrong password!").status_code == 401
    r = login(ops.client, "otto")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    wall.advance(2)
    assert login(ops.client, "otto").status_code == 200  # a success starts afresh
    assert login(ops.client, "otto", "wrong password!").status_code == 401


def test_an_unknown_user_is_throttled_exactly_like_a_real_one(ops, wall):
    answers = {}
    for name in ("sam", "nobody-here"):
        for _ in range(DEFAULTS.free_failures):
            login(ops.client, name, "wrong password!")
        r = login(ops.client, name, "wrong password!")
        answers[name] = (r.status_code, r.json()["detail"], r.headers["retry-after"])
    assert answers["sam"] == answers["nobody-here"]


def test_one_address_spraying_many_names_is_throttled_and_others_are_not(ops, wall):
    app = ops.client.app
    attacker = TestClient(app, client=("203.0.113.9", 5000))
    outcomes = [
        login(attacker, f"guess{i}", "wrong password!").status_code
        for i in range(DEFAULTS.address_free_failures + 1)
    ]
    assert outcomes[-1] == 429 and outcomes[:-1] == [401] * DEFAULTS.address_free_failures
    r = login(attacker, "sue")
    assert r.status_code == 429 and "this address" in r.json()["detail"]
    neighbour = TestClient(app, client=("203.0.113.10", 5000))
    assert login(neighbour, "sue").status_code == 200


def test_parallel_guesses_cannot_overtake_the_counter(ops, wall):
    results: list[int] = []
    lock = threading.Lock()

    def guess() -> None:
        code = login(ops.client, "sue", "wrong password!").status_code
        with lock:
            results.append(code)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checked = [e for e in audited(ops, "auth.login_failed") if e.subject == "sue"]
    assert len(checked) == DEFAULTS.free_failures  # counted before checked: no more got through
    assert results.count(429) == 16 - DEFAULTS.free_failures


def test_an_admin_unlocks_a_locked_user(ops, wall):
    for _ in range(DEFAULTS.lockout_failures):
        login(ops.client, "vic", "wrong password!")
        wall.advance(600)
    assert login(ops.client, "vic").status_code == 429
    r = ops.client.post("/api/v1/users/vic/unlock", headers=ops.as_("ada"))
    assert r.status_code == 204
    assert login(ops.client, "vic").status_code == 200
    assert [e.subject for e in audited(ops, "auth.unlock")] == ["vic"]


def test_lockouts_grow_and_failures_are_forgotten_after_quiet():
    s = ThrottleSettings(free_failures=1, lockout_failures=2, lockout_minutes=1)
    assert s.limits("user") == (1, 2)
    with pytest.raises(ValueError, match="above free_failures"):
        ThrottleSettings(free_failures=5, lockout_failures=5)
    assert throttle.address_key("2001:db8::1") == throttle.address_key("2001:db8::ffff")
    assert throttle.address_key("::ffff:192.0.2.1") == "addr:192.0.2.1"
    assert throttle.address_key(None) == "addr:unknown"


def test_successive_lockouts_double(ops, wall):
    def lock_out() -> timedelta:
        for _ in range(3 * DEFAULTS.lockout_failures):
            r = login(ops.client, "sid", "wrong password!")
            if r.status_code == 429 and "locked" in r.json()["detail"]:
                return timedelta(seconds=int(r.headers["retry-after"]))
            wall.advance(DEFAULTS.max_backoff_seconds)
        raise AssertionError("never locked out")

    first = lock_out()
    wall.advance(first.total_seconds())
    second = lock_out()
    assert second >= first * 2 - timedelta(seconds=DEFAULTS.max_backoff_seconds + 2)
    assert second > first


def test_a_long_lockout_does_not_end_with_the_failures_forgotten(sqlite_engine):
    from headend.db import writing

    s = ThrottleSettings(free_failures=1, lockout_failures=2, lockout_minutes=120, memory_hours=1)
    now = WALL

    def attempt() -> throttle.Refused | None:
        with writing(sqlite_engine) as conn:
            refused = throttle.admit(conn, s, "eve", "192.0.2.7", now)
            if refused is None:
                started = throttle.failed(conn, s, "eve", "192.0.2.7", now)
                return started[-1] if started else None
            return refused

    assert attempt() is None
    now += timedelta(seconds=5)
    first = attempt()
    assert first is not None and first.until - now == timedelta(minutes=120)
    now = first.until + timedelta(minutes=1)  # longer than memory_hours since the last attempt
    second = attempt()  # still remembered: the next failure locks again, for twice as long
    assert second is not None and second.reason == "locked"
    assert second.until - now == timedelta(minutes=240)


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(ops, wall):
    stolen = ops.as_("sue")
    codes = [
        ops.client.post(
            "/api/v1/auth/password",
            json={"current": f"guess number {i}", "new": "a brand new password"},
            headers=stolen,
        ).status_code
        for i in range(DEFAULTS.free_failures + 1)
    ]
    assert codes == [401] * DEFAULTS.free_failures + [429]
    r = ops.client.post(
        "/api/v1/auth/password",
        json={"current": PASSWORD, "new": "a brand new password"},
        headers=stolen,
    )
    assert r.status_code == 429  # the right one waits too: the password is unchanged
    assert login(ops.client, "sue").status_code == 429  # and so do log-ins as sue
