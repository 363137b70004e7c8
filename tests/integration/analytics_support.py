"""Shared pieces of the analytics tests against simulator truth: fleet, archive, readings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from headend.analytics.model import boundary
from headend.db import writing
from headend.db.tables import areas, events, gateways, meter_replacements, meters, readings
from simulators.config import parse_config
from simulators.fleet import Fleet
from simulators.meter import Cover

Z = ZoneInfo("Asia/Shanghai")
AREA, GW, TOTAL = "a1", "gw-0001", "202611249999"
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
LOSS = 0.04


def fleet_doc(scenarios: dict[str, list[dict[str, Any]]], customers: int = 8, **bus: Any) -> Any:
    """One area: ``customers`` residential meters + the area total meter (4 % technical loss)."""
    rows: list[dict[str, Any]] = [
        {
            "bus": "bus1",
            "protocol": "dlt645-2007",
            "address": f"20261124{i:04d}",
            "profile": "residential",
            "mean_kw": 0.8,
            "seed": 10 + i,
            "response_delay_ms": 5,
            "scenarios": scenarios.get(f"20261124{i:04d}", []),
        }
        for i in range(1, customers + 1)
    ]
    rows.append(
        {
            "bus": "bus1",
            "protocol": "dlt645-2007",
            "address": TOTAL,
            "role": "area_total",
            "response_delay_ms": 5,
        }
    )
    return parse_config(
        {
            "areas": [{"name": AREA, "gateway_id": GW, "technical_loss": LOSS}],
            "buses": [{"name": "bus1", "area": AREA, "baud": 9600, "pace": False, **bus}],
            "meters": rows,
        },
        "analytics test fleet",
    )


def seed_archive(
    engine: Engine, fleet: Fleet, replaced: dict[str, tuple[str, datetime, float]] | None = None
) -> None:
    """The head-end archive of the fleet; ``replaced`` maps old id → (new id, at, new start)."""
    replaced = replaced or {}
    news = {new for new, _, _ in replaced.values()}
    with writing(engine) as conn:
        conn.execute(insert(gateways).values(id=GW, valid_from=SINCE))
        conn.execute(insert(areas).values(id=AREA, gateway=GW, valid_from=SINCE))
        for ident, m in fleet.meters.items():
            if ident in news:
                continue
            base = {
                "point": f"P-{ident}", "area": AREA, "bus": "bus1", "protocol": "dlt645-2007",
                "role": m.spec.role, "multiplier": "1",
            }  # fmt: skip
            if ident in replaced:
                new, at, start = replaced[ident]
                final = sum(fleet.meters[ident].registered(at.timestamp())[0])
                conn.execute(
                    insert(meters).values(
                        id=ident, address=ident, valid_from=SINCE, valid_to=at, **base
                    )
                )
                conn.execute(insert(meters).values(id=new, address=new, valid_from=at, **base))
                conn.execute(
                    insert(meter_replacements).values(
                        point=base["point"], old_meter=ident, new_meter=new, at=at,
                        old_final=json.dumps({"energy.active.import.total": f"{final:.2f}"}),
                        new_start=json.dumps({"energy.active.import.total": f"{start:.2f}"}),
                        recorded_at=at,
                    )
                )  # fmt: skip
            else:
                conn.execute(
                    insert(meters).values(id=ident, address=ident, valid_from=SINCE, **base)
                )


def frozen_rows(
    fleet: Fleet, first: date, last: date, skip: dict[str, date] | None = None
) -> list[dict[str, Any]]:
    """Daily frozen readings of every meter from the model's registers (2 decimals, as on the wire).

    ``skip`` maps a meter to the first freeze date it no longer delivers (a silent meter).
    """
    skip = skip or {}
    out = []
    day = first
    while day <= last:
        t = boundary(day, Z)
        ts = t.timestamp()
        for ident, m in fleet.meters.items():
            if not m.installed(ts) or (ident in skip and day >= skip[ident]):
                continue
            imp, exp = m.registered(ts)
            values = {
                "energy.active.import.total": sum(imp),
                "energy.active.import.t4": imp[3],
                "energy.active.export.total": sum(exp),
            }
            for q, v in values.items():
                out.append(
                    {
                        "meter": ident, "quantity": q, "time": t, "kind": "daily_frozen",
                        "value": f"{v:.2f}", "gateway": GW, "gateway_time": t + timedelta(minutes=6),
                        "freeze_time": t, "flags": "",
                    }
                )  # fmt: skip
        day += timedelta(days=1)
    return out


def cover_events(fleet: Fleet, until: datetime) -> list[dict[str, Any]]:
    """Cover and terminal-cover records the model's meters hold (as the gateway reports them)."""
    out = []
    for ident, m in fleet.meters.items():
        for cover in Cover:
            for n, rec in enumerate(m.cover_records(cover, until.timestamp())):
                start = datetime.fromtimestamp(rec.start, UTC)
                out.append(
                    {
                        "key": f"{ident}|{cover.value}|{n}", "gateway": GW, "meter": ident,
                        "type": f"{cover.value}_open",
                        "time": start, "start": start, "details": "{}", "received": until,
                    }
                )  # fmt: skip
    return out


def store(engine: Engine, rows: list[dict[str, Any]], table: Any = readings) -> None:
    if rows:
        with writing(engine) as conn:
            conn.execute(insert(table), rows)


def store_events(engine: Engine, rows: list[dict[str, Any]]) -> None:
    store(engine, rows, events)


def truth_rate(fleet: Fleet, day: date) -> tuple[float, dict[str, Any]]:
    """The truth's loss rate of ``day``: (supply − Σ registered) / supply, and the truth itself."""
    t0, t1 = boundary(day, Z), boundary(day + timedelta(days=1), Z)
    truth = fleet.control.truth_area(AREA, t0.isoformat(), t1.isoformat())
    return truth["apparent_loss_kwh"] / truth["supply_kwh"], truth


def dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
