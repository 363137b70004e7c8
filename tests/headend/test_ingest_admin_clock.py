"""The API's "now" is the app's clock: default ``valid_from``/``?at=`` and resolution times."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from headend.app import create_app
from headend.auth import users as users_db
from headend.config import DatabaseSettings, Settings
from headend.db import make_engine
from headend.db.engine import writing
from headend.db.tables import unregistered
from taiqu.clock import ManualClock

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

V1 = "/api/v1"
# Far from the wall clock either way, so a wall-clock "now" cannot pass by accident.
SIMULATED = datetime(2031, 3, 10, 1, 30, tzinfo=UTC)


@pytest.fixture
def app_clock() -> ManualClock:
    return ManualClock(SIMULATED)


@pytest.fixture
def client(
    sqlite_settings: DatabaseSettings, app_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "x" * 48)
    engine = make_engine(sqlite_settings)
    app = create_app(
        Settings(database=sqlite_settings), engine=engine, ingest=False, clock=app_clock
    )
    with TestClient(app) as c:
        with writing(engine) as conn:
            users_db.create(conn, "root", "admin", "pw-root-123456", actor="t", now=SIMULATED)
        r = c.post(f"{V1}/auth/token", data={"username": "root", "password": "pw-root-123456"})
        c.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        c.engine = engine  # type: ignore[attr-defined]
        yield c
    engine.dispose()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_archive_changes_without_valid_from_start_at_the_app_clock(
    client: TestClient, app_clock: ManualClock
) -> None:
    r = client.post(f"{V1}/gateways", json={"id": "gw-0001", "name": "north"})
    assert r.status_code == 201, r.text
    assert instant(r.json()["valid_from"]) == SIMULATED
    app_clock.advance(3600)
    r = client.patch(f"{V1}/gateways/gw-0001", json={"name": "north yard"})
    assert r.status_code == 200, r.text
    assert instant(r.json()["valid_from"]) == SIMULATED + timedelta(hours=1)
    # "as it was": the default ?at= of reads is the app clock too, so the rename is in force
    assert client.get(f"{V1}/gateways/gw-0001").json()["name"] == "north yard"


def test_resolving_an_unregistered_meter_is_stamped_with_the_app_clock(
    client: TestClient, app_clock: ManualClock
) -> None:
    with writing(client.engine) as conn:  # type: ignore[attr-defined]
        conn.execute(
            unregistered.insert().values(
                gateway="gw-0001",
                meter="202600000001",
                first_seen=SIMULATED,
                last_seen=SIMULATED,
                records=3,
            )
        )
    app_clock.advance(90)
    r = client.post(
        f"{V1}/ingest/unregistered/gw-0001/202600000001/resolve",
        json={"resolution": "added to the archive"},
    )
    assert r.status_code == 200, r.text
    with client.engine.connect() as conn:  # type: ignore[attr-defined]
        resolved = conn.execute(select(unregistered.c.resolved_at)).scalar_one()
    assert resolved == SIMULATED + timedelta(seconds=90)
