"""``last_seen`` moves with any message of a gateway; the last status message is kept apart.

Issue 23: the console showed the hourly status message's time as "last communication" while
readings of two hours later were arriving.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from headend.app import create_app
from headend.auth import users as users_db
from headend.config import Settings
from headend.db import make_engine
from headend.db.engine import writing
from headend.db.tables import gateway_state
from headend.ingest import presence
from headend.ingest.store import Ingestor
from protocols.uplink import CommandResult, Status, Topics, encode
from tests.headend.gen import batch, meter_ids, publishable, reading

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

GW, EPOCH = "gw-0001", "5f0c2a9e41d7b3c8"
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def handle(engine: Engine, ing: Ingestor, topic: str, payload: bytes, at: datetime) -> str:
    with writing(engine) as conn:
        return ing.handle(conn, topic, payload, at).kind


def status(health: dict | None = None) -> tuple[str, bytes]:
    return Topics(GW).status, encode(
        Status(gateway=GW, state="online", epoch=EPOCH, health=health or {})
    )


def state(engine: Engine):
    with engine.connect() as conn:
        return conn.execute(select(gateway_state).where(gateway_state.c.gateway == GW)).one()


def test_readings_and_results_move_last_seen_and_the_status_time_stays(engine: Engine) -> None:
    ing = Ingestor()
    assert handle(engine, ing, *status({"meters": 3}), NOW) == "status"
    later = NOW + timedelta(hours=2, minutes=23)
    data = publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in meter_ids(2)]))
    assert handle(engine, ing, *data, later) == "data"
    row = state(engine)
    health, last_status = presence.split_health(row.health)
    assert row.last_seen == later and last_status == NOW
    assert health == {"meters": 3}  # the gateway's own health, unchanged
    result = CommandResult(id="c-1", state="executed", gateway=GW, at=later)
    ing.on_result = lambda conn, gw, res: None  # the commands module is not under test
    assert handle(engine, ing, Topics(GW).result, encode(result), later + timedelta(minutes=1))
    assert state(engine).last_seen == later + timedelta(minutes=1)
    # a late, redelivered message never moves last_seen backwards
    old = publishable(batch(GW, EPOCH, 1, [reading(m, 1) for m in meter_ids(2)]))
    handle(engine, ing, *old, NOW)
    assert state(engine).last_seen == later + timedelta(minutes=1)
    # a status without health keeps the last health and records its own time
    handle(engine, ing, *status(), later + timedelta(hours=1))
    health, last_status = presence.split_health(state(engine).health)
    assert health == {"meters": 3} and last_status == later + timedelta(hours=1)


def test_data_from_a_gateway_never_heard_of_creates_no_state(engine: Engine) -> None:
    data = publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in meter_ids(1)]))
    handle(engine, Ingestor(), *data, NOW)
    with engine.connect() as conn:
        assert conn.execute(select(gateway_state)).first() is None


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "x" * 48)
    engine = make_engine(settings.database)
    app = create_app(settings, engine=engine, ingest=False)
    with TestClient(app) as c:
        with writing(engine) as conn:
            users_db.create(conn, "root", "admin", "pw-root-123456", actor="t", now=NOW)
        r = c.post("/api/v1/auth/token", data={"username": "root", "password": "pw-root-123456"})
        c.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        c.engine = engine  # type: ignore[attr-defined]
        yield c
    engine.dispose()


def test_the_api_shows_the_last_message_and_the_last_status(client: TestClient) -> None:
    assert client.post("/api/v1/gateways", json={"id": GW, "name": "g"}).status_code == 201
    engine = client.engine  # type: ignore[attr-defined]
    ing = Ingestor()
    handle(engine, ing, *status({"meters": 2}), NOW)
    later = NOW + timedelta(hours=2)
    handle(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading("202600000001", 0)])), later)
    gw = client.get(f"/api/v1/gateways/{GW}").json()
    assert datetime.fromisoformat(gw["last_seen"]) == later
    assert datetime.fromisoformat(gw["last_status"]) == NOW
    assert gw["health"] == {"meters": 2}


def test_an_online_status_not_after_the_last_one_is_a_replay_and_ignored(engine: Engine) -> None:
    """Review of issue 19: after the will, the broker replayed the gateway's genuine online
    status and the dead gateway looked online with a fresh ``last_seen``."""
    ing = Ingestor()
    t1, t2 = NOW, NOW + timedelta(minutes=15)

    def online(sent: datetime, synced: bool | None = True) -> tuple[str, bytes]:
        return Topics(GW).status, encode(
            Status(gateway=GW, state="online", time=sent, epoch=EPOCH, clock_synced=synced,
                   health={"at": sent.isoformat()})
        )  # fmt: skip

    will = Topics(GW).status, encode(Status(gateway=GW, state="offline", epoch=EPOCH))
    assert handle(engine, ing, *online(t1), t1) == "status"
    assert handle(engine, ing, *online(t2), t2) == "status"
    assert handle(engine, ing, *will, t2 + timedelta(minutes=1)) == "status"
    before = state(engine)
    later = t2 + timedelta(minutes=5)
    for replay in (online(t2), online(t1)):  # the latest, and an older one
        assert handle(engine, ing, *replay, later) == "ignored"
    assert state(engine) == before and before.online is False
    health, _ = presence.split_health(before.health)
    assert health == {"at": t2.isoformat()}  # the mark is the ingest's, not shown as health
    # an unsynced gateway's clock may step back: its statuses are taken as they come
    assert handle(engine, ing, *online(t1, synced=False), later) == "status"
    assert state(engine).online is True
    assert handle(engine, ing, *online(t2), later) == "ignored"  # the mark did not go back
    # and a genuine later status after a reconnection applies
    assert handle(engine, ing, *will, later) == "status"
    assert handle(engine, ing, *online(t2 + timedelta(minutes=30)), later) == "status"
    assert state(engine).online is True
