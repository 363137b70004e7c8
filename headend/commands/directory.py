"""What commands and scopes need from the meter archive: areas, and each meter's facts at a time.

The archive is effective-dated (``headend.db.tables``): the version of a row in force at ``at`` is
the one with ``valid_from <= at < valid_to`` (``valid_to`` NULL: still current).  A meter's gateway
is its area's gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Table, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from headend.db.tables import areas, meters
from headend.guards import MeterFacts


def _in_force(table: Table, at: datetime) -> ColumnElement[bool]:
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def known_areas(conn: Connection, wanted: Iterable[str], at: datetime) -> set[str]:
    """Which of ``wanted`` are areas of the archive at ``at``."""
    wanted = set(wanted)
    if not wanted:
        return set()
    rows = conn.execute(select(areas.c.id).where(areas.c.id.in_(wanted), _in_force(areas, at)))
    return set(rows.scalars())


def _facts_query(at: datetime):  # type: ignore[no-untyped-def]
    area_now = select(areas.c.id, areas.c.gateway).where(_in_force(areas, at)).subquery()
    return (
        select(meters.c.id, meters.c.area, meters.c.keep_power, area_now.c.gateway)
        .select_from(meters.outerjoin(area_now, area_now.c.id == meters.c.area))
        .where(_in_force(meters, at))
    )


def _facts(rows: Iterable[object]) -> dict[str, MeterFacts]:
    return {
        r.id: MeterFacts(r.id, r.gateway or "", r.area, bool(r.keep_power))  # type: ignore[attr-defined]
        for r in rows
    }


def meter_facts(conn: Connection, ids: Iterable[str], at: datetime) -> dict[str, MeterFacts]:
    """Facts of the meters ``ids`` in force at ``at`` (unknown ids are absent)."""
    ids = sorted(set(ids))
    found: dict[str, MeterFacts] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(_facts(conn.execute(_facts_query(at).where(meters.c.id.in_(chunk)))))
    return found


def area_meters(conn: Connection, wanted: Iterable[str], at: datetime) -> dict[str, MeterFacts]:
    """Facts of every meter in the areas ``wanted`` at ``at``."""
    wanted = sorted(set(wanted))
    query = _facts_query(at).where(meters.c.area.in_(wanted)).order_by(meters.c.id)
    return _facts(conn.execute(query))


def unswitchable(conn: Connection, ids: Iterable[str], at: datetime) -> dict[str, str]:
    """Why each of ``ids`` cannot take a remote-control (relay, alarm, keep-power) command.

    An area total meter measures the transformer's supply and is never switched; only DL/T 645
    meters (remote-control function 0x1C) and DL/T 698.45 meters (object 8000) have a relay
    the gateway drives — Modbus meters answer reads only.
    """
    ids = sorted(set(ids))
    reasons: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(meters.c.id, meters.c.role, meters.c.protocol).where(
            meters.c.id.in_(chunk), _in_force(meters, at)
        )
        for row in conn.execute(query):
            if row.role == "area_total":
                reasons[row.id] = "an area total meter (the transformer's supply) is never switched"
            elif not str(row.protocol).startswith(("dlt645", "dlt698")):
                reasons[row.id] = f"a {row.protocol} meter has no remote control"
    return reasons
