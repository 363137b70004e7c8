"""Shared pieces of the prepayment tests: an archive with metering points, readings, a job runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert

from headend.db import writing
from headend.db.tables import areas, meters, readings
from headend.prepay import charging, store
from headend.prepay.money import from_micro

SH = ZoneInfo("Asia/Shanghai")
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
TIERED = {
    "kind": "tiered",
    "period": "monthly",
    "steps": [
        {"upto": "200", "price": "0.5283"},
        {"upto": "400", "price": "0.5783"},
        {"upto": None, "price": "0.8283"},
    ],
}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


def seed_meters(
    engine: Engine,
    ids: list[str],
    *,
    area: str = "A1",
    gateway: str = "gw1",
    tariff: str = "res",
    keep_power: frozenset[str] = frozenset(),
    multiplier: str = "1",
) -> None:
    """An area with ``ids`` as customer meters, each its own point ``P-<id>``."""
    with writing(engine) as conn:
        conn.execute(insert(areas).values(id=area, name=area, gateway=gateway, valid_from=SINCE))
        conn.execute(
            insert(meters),
            [
                {
                    "id": m,
                    "point": f"P-{m}",
                    "area": area,
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": f"{n + 1:012d}",
                    "multiplier": multiplier,
                    "tariff_category": tariff,
                    "keep_power": m in keep_power,
                    "valid_from": SINCE,
                }
                for n, m in enumerate(ids)
            ],
        )


def add_readings(
    conn: Connection,
    meter: str,
    points: list[tuple[datetime, str]],
    *,
    kind: str = "interval",
    quantity: str = "energy.active.import.total",
) -> None:
    conn.execute(
        insert(readings),
        [
            {
                "meter": meter,
                "quantity": quantity,
                "time": t,
                "kind": kind,
                "value": v,
                "gateway": "gw1",
                "gateway_time": t,
                "flags": "",
            }
            for t, v in points
        ],
    )


def open_account(
    engine: Engine,
    account: str,
    points: list[str],
    *,
    mode: str = "prepaid",
    at: datetime = SINCE,
    contacts: list[str] | None = None,
    overdraft: str = "0",
    tariff: str | None = None,
    split: dict[str, Any] | None = None,
    language: str = "zh",
) -> None:
    with writing(engine) as conn:
        store.create_account(
            conn,
            account,
            mode=mode,
            contacts=contacts or [],
            overdraft=Decimal(overdraft),
            language=language,
            actor="test",
            now=at,
        )
        for p in points:
            store.link_point(conn, account, p, at, tariff=tariff, split=split, actor="test", now=at)


def put_tariff(
    engine: Engine, tariff: str, definition: dict[str, Any], at: datetime = SINCE
) -> None:
    with writing(engine) as conn:
        store.put_tariff(conn, tariff, definition, at, actor="test", now=at)


def run_charges(engine: Engine, now: datetime, *, full: bool = False) -> charging.PointResult:
    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    return charging.charge_all(factory, SH, now=now, full=full, lookback=timedelta(days=62))


def balance(engine: Engine, account: str) -> Decimal:
    with writing(engine) as conn:
        return from_micro(store.balance_micro(conn, account))
