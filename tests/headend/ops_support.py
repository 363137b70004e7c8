"""Shared pieces of the operations tests: a small archive, users, an app client, log-ins."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert

from headend.app import create_app
from headend.auth import passwords
from headend.auth import users as user_store
from headend.config import Settings
from headend.db import writing
from headend.db.tables import areas, meters
from taiqu.clock import ManualClock

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx (not installed)
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
# Tuesday 2026-03-10 10:00 in Shanghai: inside the default disconnect window
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
# Areas A1 (gateway gw1, 15 meters, A1-m00 keep-power), A2 (gw2, 5 meters), B1 (gw3, 3 meters)
LAYOUT = {"A1": ("gw1", 15), "A2": ("gw2", 5), "B1": ("gw3", 3)}


def meter_id(area: str, i: int) -> str:
    return f"{area}-m{i:02d}"


def seed_archive(engine: Engine) -> None:
    with writing(engine) as conn:
        for area, (gateway, n) in LAYOUT.items():
            conn.execute(
                insert(areas).values(id=area, name=area, gateway=gateway, valid_from=SINCE)
            )
            conn.execute(
                insert(meters),
                [
                    {
                        "id": meter_id(area, i),
                        "point": f"P-{meter_id(area, i)}",
                        "area": area,
                        "bus": "bus1",
                        "protocol": "dlt645-2007",
                        "address": f"{i + 1:012d}",
                        "keep_power": area == "A1" and i == 0,
                        "valid_from": SINCE,
                    }
                    for i in range(n)
                ],
            )


def add_user(engine: Engine, name: str, role: str, areas_: list[str] | None = None) -> None:
    with writing(engine) as conn:
        user_store.create(conn, name, role, PASSWORD, areas=areas_, actor="test", now=TUESDAY_10)


USERS = {
    "vic": ("viewer", None),
    "olga": ("operator", None),
    "otto": ("operator", None),
    "sam": ("supervisor", None),
    "sue": ("supervisor", None),
    "ada": ("admin", None),
    "ola": ("operator", ["A2"]),  # a supply-station operator: area A2 only
    "vera": ("viewer", ["A2"]),
    "sid": ("supervisor", ["A2"]),
}


class Ops:
    """A running app with its client, clock and engine; ``as_(name)`` gives auth headers."""

    def __init__(self, client: TestClient, clock: ManualClock, engine: Engine):
        self.client, self.clock, self.engine = client, clock, engine
        self._tokens: dict[str, dict[str, str]] = {}

    def as_(self, name: str) -> dict[str, str]:
        if name not in self._tokens:
            r = self.client.post(
                "/api/v1/auth/token", data={"username": name, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self._tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self._tokens[name]

    def command(self, who: str, **body: object) -> object:
        return self.client.post("/api/v1/commands", json=body, headers=self.as_(who))


@pytest.fixture(name="cheap_hashes")
def cheap_hashes_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with minimal cost: the tests check behaviour, not the work factor."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )
    passwords._dummy_hash.cache_clear()


@pytest.fixture(name="ops")
def ops_fixture(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, cheap_hashes: None
) -> Iterator[Ops]:
    """The app on a seeded database (both backends), the clock at Tuesday 10:00 Shanghai."""
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "s" * 40)
    seed_archive(engine)
    for name, (role, scope) in USERS.items():
        add_user(engine, name, role, scope)
    clock = ManualClock(TUESDAY_10)
    app = create_app(Settings(), engine=engine, ingest=False)
    app.state.clock = clock
    with TestClient(app) as client:
        yield Ops(client, clock, engine)
