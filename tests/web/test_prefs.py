"""Per-user language and zone: migration 0006 on an older database, and ``/api/v1/me/prefs``."""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import create_engine, inspect, select, text

from headend.db.migrate import discover
from headend.db.ops_tables import users
from tests.web.conftest import Web
from tests.web.support import PASSWORD, TestClient, sign_in


def _token(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_migration_adds_the_columns_to_an_older_users_table(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # users as migration 0002 created it before 0006
        conn.exec_driver_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE, "
            "role VARCHAR(16) NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO users (name, role) VALUES ('old', 'admin')")
        importlib.import_module("headend.migrations.0006_user_prefs").upgrade(conn)
        row = conn.execute(text("SELECT language, timezone FROM users")).one()
        # a second run (a database created with the columns already) changes nothing
        importlib.import_module("headend.migrations.0006_user_prefs").upgrade(conn)
    assert tuple(row) == ("zh", "Asia/Shanghai")
    assert {"language", "timezone"} <= {c["name"] for c in inspect(engine).get_columns("users")}
    assert 6 in [m.version for m in discover()]


def test_prefs_over_the_api_follow_the_user_into_the_console(web: Web) -> None:
    api = TestClient(web.app)
    headers = _token(api, "vic")
    assert api.get("/api/v1/me/prefs", headers=headers).json() == {
        "language": "zh",
        "timezone": "Asia/Shanghai",
    }
    r = api.put(
        "/api/v1/me/prefs", json={"language": "en", "timezone": "Europe/Berlin"}, headers=headers
    )
    assert r.status_code == 200
    with web.engine.connect() as conn:
        stored = conn.execute(
            select(users.c.language, users.c.timezone).where(users.c.name == "vic")
        ).one()
    assert tuple(stored) == ("en", "Europe/Berlin")
    page = sign_in(web.app, "vic").get("/").text
    assert 'lang="en"' in page and "Europe/Berlin" in page


def test_bad_prefs_are_refused_and_nothing_changes(web: Web) -> None:
    api = TestClient(web.app)
    headers = _token(api, "olga")
    for body in (
        {"language": "fr", "timezone": "UTC"},
        {"language": "en", "timezone": "Mars/Olympus"},
        {"language": "en"},
    ):
        r = api.put("/api/v1/me/prefs", json=body, headers=headers)
        assert r.status_code == 422 and isinstance(r.json()["detail"], list), r.text
    assert api.get("/api/v1/me/prefs", headers=headers).json()["timezone"] == "Asia/Shanghai"
    assert api.get("/api/v1/me/prefs").status_code == 401
