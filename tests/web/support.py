"""Shared pieces of the web console tests: the app with the console mounted, a seeded fleet,
and browser-less clients signed in as a given user."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy import Engine, insert

from headend.app import create_app
from headend.config import DatabaseSettings, MqttSettings, Settings
from headend.db import writing
from headend.db.tables import events, gateway_state, meters, readings
from tests.headend.ops_support import PASSWORD, USERS, add_user, meter_id, seed_archive

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx (not installed)
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

__all__ = [
    "PASSWORD",
    "TestClient",
    "csrf_of",
    "found",
    "make_app",
    "recompute",
    "seed",
    "seed_live",
    "seed_loss",
    "settings",
    "sign_in",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
ENERGY = "energy.active.import.total"
QUANTITY_RELAY = "relay.state"
LOSS_DAYS = 6
# Always open: the browser tests run on the wall clock, whatever the day and hour.
OPEN_WINDOW = {
    "window_start": "00:00:00",
    "window_end": "23:59:59",
    "weekdays": [1, 2, 3, 4, 5, 6, 7],
    "holiday_country": None,
    "supervisor_threshold": 3,
}


def settings(
    db: Path, *, guards: dict[str, Any] | None = None, mqtt: MqttSettings | None = None
) -> Settings:
    """Head-end settings on SQLite at ``db``; the analytics job off (tests recompute)."""
    extra: dict[str, Any] = {"analytics": {"job": False}}
    if guards is not None:
        extra["guards"] = guards
    return Settings(
        database=DatabaseSettings(url=f"sqlite:///{db}", sqlite_synchronous="NORMAL"),
        mqtt=mqtt or MqttSettings(),
        extra=extra,
    )


def make_app(config: Settings, *, ingest: bool = False) -> FastAPI:
    """``create_app`` (which mounts the console)."""
    return create_app(config, ingest=ingest)


def seed(engine: Engine, today: date, now: datetime) -> None:
    """Archive, users, A2's daily frozen registers (loss 5 %), live readings, a cover event."""
    seed_archive(engine)
    for name, (role, scope) in USERS.items():
        add_user(engine, name, role, scope)
    rows = seed_loss(engine, today)
    with writing(engine) as conn:
        for i in range(5):
            rows.append(_reading(meter_id("A2", i), now, D(200) + i, "interval", None))
            rows.append(
                _reading(meter_id("A2", i), now, "closed", "interval", None, QUANTITY_RELAY)
            )
        conn.execute(insert(readings), rows)
    seed_live(engine, now)


def seed_loss(engine: Engine, today: date) -> list[dict[str, Any]]:
    """A2's area total meter, and A2's daily frozen registers up to ``today`` (the rows to insert:
    line loss from 5 % growing by 1 % a day)."""
    since = datetime(2025, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    with writing(engine) as conn:
        conn.execute(
            insert(meters).values(
                id="A2-T", point="P-A2-T", area="A2", bus="bus1", protocol="dlt645-2007",
                address="000000009999", role="area_total", multiplier="1", valid_from=since,
            )
        )  # fmt: skip
        for k in range(LOSS_DAYS + 1):
            day = today - timedelta(days=LOSS_DAYS - k)
            t = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)
            total = D(0)
            for i in range(5):
                value = D(100) + D(10 + i) * k
                total += D(10 + i) * k
                rows.append(_reading(meter_id("A2", i), t, value, "daily_frozen", t))
            # loss grows from 5 % to 5 % + 1 % a day: a visible trend
            supply = total * (D("1.05") + D("0.01") * k)
            rows.append(_reading("A2-T", t, D(1000) + supply, "daily_frozen", t))
    return rows


def seed_live(engine: Engine, now: datetime) -> None:
    """Gateway gw2 online (enrolled: its uplink key registered) and a cover event in A2 (what a
    running gateway would have sent)."""
    from headend.security import gateway_keys

    with writing(engine) as conn:
        conn.execute(
            insert(gateway_state).values(
                gateway="gw2", online=True, since=now, last_seen=now, health="{}"
            )
        )
        gateway_keys.register(conn, "gw2", bytes(32), now, by="test")
        conn.execute(
            insert(events).values(
                key="cover-1", gateway="gw2", meter=meter_id("A2", 2), type="meter_cover_open",
                time=now - timedelta(hours=2), details="{}", received=now,
            )
        )  # fmt: skip


def _reading(
    meter: str,
    t: datetime,
    value: Any,
    kind: str,
    freeze: datetime | None,
    quantity: str = ENERGY,
) -> dict[str, Any]:
    return {
        "meter": meter, "quantity": quantity, "time": t, "kind": kind, "value": str(value),
        "gateway": "gw2", "gateway_time": t + timedelta(minutes=5), "freeze_time": freeze,
        "flags": "",
    }  # fmt: skip


def recompute(engine: Engine, today: date, now: datetime) -> None:
    """Run the analytics over the seeded days (line loss, suspects, collection rates)."""
    from headend.analytics.service import recompute as run
    from headend.analytics.settings import AnalyticsSettings

    run(engine, AnalyticsSettings(job=False), today - timedelta(days=LOSS_DAYS), today, now)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (the test fails if it is not there)."""
    match = re.search(pattern, text, re.S)
    assert match, f"{pattern!r} not in the page"
    return match.group(1)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(app: FastAPI, name: str, password: str = PASSWORD) -> TestClient:
    """A client (its own cookie jar) signed in as ``name`` through the sign-in form."""
    client = TestClient(app)
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client
