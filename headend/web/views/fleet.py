"""Read models of the fleet overview, an area and a meter, within the user's area scope.

Lists go through the API's own functions (``headend.api.areas``/``meters``) or the stores they
use, so the console shows exactly what the API would show the same user.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from headend.api.areas import list_areas
from headend.api.deps import require_area
from headend.archive import effective
from headend.auth.roles import User
from headend.db import events as events_db
from headend.db import readings as readings_db
from headend.db.ops_tables import command_targets, commands
from headend.db.tables import areas, events, gateway_state, meters, readings
from headend.ingest import presence
from protocols.model import EventType
from protocols.quantities import RELAY_STATE

ENERGY = "energy.active.import.total"
ALARMS = (
    EventType.METER_COVER_OPEN,
    EventType.TERMINAL_COVER_OPEN,
    EventType.READING_ANOMALY,
    EventType.METER_UNREACHABLE,
    EventType.POWER_DOWN,
)
ALARM_WINDOW = timedelta(hours=24)
LIVE_QUANTITIES = (
    ENERGY,
    "power.active.total",
    "voltage.a",
    "current.a",
    RELAY_STATE,
)


def overview(conn: Connection, user: User, now: datetime) -> list[dict[str, Any]]:
    """Every visible area with its gateway's state, meter count and alarms of the last day."""
    rows = list_areas(conn, user, None)
    ids = [r["id"] for r in rows]
    gateways = {r["gateway"] for r in rows if r.get("gateway")}
    states = {
        s.gateway: s
        for s in conn.execute(
            select(gateway_state).where(gateway_state.c.gateway.in_(sorted(gateways)))
        )
    }
    counts: dict[str, int] = dict(
        conn.execute(
            select(meters.c.area, func.count())
            .where(meters.c.area.in_(ids), meters.c.valid_to.is_(None))
            .group_by(meters.c.area)
        ).all()
    )
    alarms = Counter[str]()
    alarm_rows = conn.execute(
        select(meters.c.area, func.count())
        .select_from(events.join(meters, meters.c.id == events.c.meter))
        .where(
            meters.c.area.in_(ids),
            meters.c.valid_to.is_(None),
            events.c.type.in_([a.value for a in ALARMS]),
            events.c.time > now - ALARM_WINDOW,
        )
        .group_by(meters.c.area)
    )
    for area, n in alarm_rows:
        alarms[area] += int(n)
    out = []
    for r in rows:
        state = states.get(r.get("gateway") or "")
        out.append(
            {
                **r,
                "meters": int(counts.get(r["id"], 0)),
                "online": None if state is None else bool(state.online),
                "last_seen": None if state is None else state.last_seen,
                "last_status": None if state is None else presence.split_health(state.health)[1],
                "alarms": alarms.get(r["id"], 0),
            }
        )
    return out


def area_detail(conn: Connection, user: User, area_id: str, now: datetime) -> dict[str, Any]:
    """The area, its gateway state and its meters with last reading and relay state."""
    require_area(user, area_id)
    area = effective.plain(effective.get(conn, areas, area_id))
    state = None
    if area.get("gateway"):
        state = conn.execute(
            select(gateway_state).where(gateway_state.c.gateway == area["gateway"])
        ).first()
    energy, _ = readings_db.latest_of_area(conn, area_id, ENERGY, None, now=now)
    relay, _ = readings_db.latest_of_area(conn, area_id, RELAY_STATE, None, now=now)
    last = {i["meter"]: i for i in energy}
    relays = {i["meter"]: i for i in relay}
    members = conn.execute(
        select(meters)
        .where(meters.c.area == area_id, effective.in_force(meters, None))
        .order_by(meters.c.id)
    ).all()
    return {
        "area": area,
        "online": None if state is None else bool(state.online),
        "last_seen": None if state is None else state.last_seen,
        "last_status": None if state is None else presence.split_health(state.health)[1],
        "meters": [
            {
                "id": m.id,
                "role": m.role,
                "customer": m.customer,
                "keep_power": bool(m.keep_power),
                "reading": last.get(m.id),
                "relay": relays.get(m.id),
            }
            for m in members
        ],
    }


def meter_detail(conn: Connection, user: User, meter_id: str) -> dict[str, Any]:
    """The meter as the archive has it now (``NotFound``/out-of-scope like the API)."""
    row = effective.get(conn, meters, meter_id)
    require_area(user, row.area)
    return effective.plain(row)


def latest(conn: Connection, meter_id: str, multiplier: str) -> dict[str, dict[str, Any]]:
    """The newest reading of each live quantity of the meter (multiplier applied)."""
    from decimal import Decimal

    out: dict[str, dict[str, Any]] = {}
    for quantity in LIVE_QUANTITIES:
        row = conn.execute(
            select(readings)
            .where(readings.c.meter == meter_id, readings.c.quantity == quantity)
            .order_by(readings.c.time.desc())
            .limit(1)
        ).first()
        if row is not None:
            out[quantity] = readings_db.reading_dict(row, Decimal(multiplier))
            out[quantity]["command"] = row.command
    return out


def consumption(
    conn: Connection, meter_id: str, now: datetime, days: int = 14
) -> list[dict[str, Any]]:
    """The energy register over the last ``days`` days, oldest first (multiplier applied)."""
    items, _ = readings_db.page(
        conn,
        meter_id,
        quantity=ENERGY,
        kind=None,
        start=now - timedelta(days=days),
        end=None,
        after=None,
        limit=5000,
    )
    return items


def meter_events(conn: Connection, meter_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The meter's newest events, newest first."""
    rows = conn.execute(
        select(events)
        .where(events.c.meter == meter_id)
        .order_by(events.c.time.desc(), events.c.id.desc())
        .limit(limit)
    )
    return [events_db.event_dict(r) for r in rows]


def meter_commands(
    conn: Connection, user: User, meter_id: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Commands that targeted the meter, newest first, with the meter's own outcome."""
    rows = conn.execute(
        select(commands, command_targets.c.state.label("target_state"))
        .select_from(commands.join(command_targets, command_targets.c.command_id == commands.c.id))
        .where(command_targets.c.meter == meter_id)
        .order_by(commands.c.created_at.desc())
        .limit(limit)
    ).all()
    out = []
    for r in rows:
        if user.areas is not None and not set(r.areas) <= user.areas:
            continue  # the API hides commands reaching outside the user's areas
        item = dict(r._mapping)
        if isinstance(item.get("params"), str):
            item["params"] = json.loads(item["params"])
        out.append(item)
    return out
