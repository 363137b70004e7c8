"""Audited archive operations; each one refreshes the archive of every gateway it touches.

Every change is recorded with ``headend.audit.append`` in the same transaction (actions
``archive.gateway_*``, ``archive.area_*``, ``archive.meter_*``, ``archive.meter_replace``), so a
change and its audit row commit together or not at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from headend import audit as audit_log
from headend.archive import effective, push
from headend.archive.models import (
    AreaIn,
    AreaPatch,
    GatewayIn,
    GatewayPatch,
    MeterIn,
    MeterPatch,
    ReplacementIn,
    check_address,
)
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.tables import areas, gateways, meter_replacements, meters


def audit(conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    """Append to the audit log, ``detail`` made plain JSON (times, decimals as text)."""
    audit_log.append(conn, actor, action, subject, json.loads(json.dumps(detail, default=str)))


def _refresh(conn: Connection, gateways_: set[str | None], now: datetime) -> None:
    for gw in sorted(g for g in gateways_ if g):
        push.refresh(conn, gw, now)


def _area_gateway(conn: Connection, area: str, at: datetime | None = None) -> str | None:
    try:
        return effective.get(conn, areas, area, at).gateway  # type: ignore[no-any-return]
    except NotFound:
        return None


def _require_area(conn: Connection, area: str, at: datetime) -> None:
    try:
        effective.get(conn, areas, area, at)
    except NotFound:
        raise InvalidRequest(f"area {area!r} does not exist at {at.isoformat()}") from None


def _require_gateway(conn: Connection, gateway: str | None, at: datetime) -> None:
    if gateway is None:
        return
    try:
        effective.get(conn, gateways, gateway, at)
    except NotFound:
        raise InvalidRequest(f"gateway {gateway!r} does not exist at {at.isoformat()}") from None


def _one_total(conn: Connection, area: str, role: str, meter: str) -> None:
    if role != "area_total":
        return
    other = conn.execute(
        select(meters.c.id).where(
            meters.c.area == area,
            meters.c.role == "area_total",
            meters.c.valid_to.is_(None),
            meters.c.id != meter,
        )
    ).first()
    if other is not None:
        raise Conflict(f"area {area!r} already has an area total meter ({other.id})")


# --- gateways ---------------------------------------------------------------------------------


def create_gateway(conn: Connection, data: GatewayIn, actor: str, at: datetime) -> None:
    effective.create(conn, gateways, data.model_dump(), at, actor)
    audit(conn, actor, "archive.gateway_create", f"gateway:{data.id}", data.model_dump())


def update_gateway(
    conn: Connection, id_: str, patch: GatewayPatch, actor: str, at: datetime
) -> None:
    changes = patch.model_dump(exclude_none=True)
    effective.change(conn, gateways, id_, changes, at, actor)
    audit(conn, actor, "archive.gateway_update", f"gateway:{id_}", {"changes": changes})


def retire_gateway(conn: Connection, id_: str, actor: str, at: datetime) -> None:
    served = conn.execute(
        select(areas.c.id).where(areas.c.gateway == id_, areas.c.valid_to.is_(None))
    ).first()
    if served is not None:
        raise Conflict(f"gateway {id_!r} still serves area {served.id!r}: move the area first")
    effective.retire(conn, gateways, id_, at)
    audit(conn, actor, "archive.gateway_retire", f"gateway:{id_}", {"at": at})


# --- areas ------------------------------------------------------------------------------------


def create_area(conn: Connection, data: AreaIn, actor: str, at: datetime) -> None:
    _require_gateway(conn, data.gateway, at)
    effective.create(conn, areas, data.model_dump(), at, actor)
    audit(conn, actor, "archive.area_create", f"area:{data.id}", data.model_dump())
    _refresh(conn, {data.gateway}, at)


def update_area(conn: Connection, id_: str, patch: AreaPatch, actor: str, at: datetime) -> None:
    changes = patch.model_dump(exclude_unset=True)
    if "gateway" in changes:
        _require_gateway(conn, changes["gateway"], at)
    old, new = effective.change(conn, areas, id_, changes, at, actor)
    audit(conn, actor, "archive.area_update", f"area:{id_}", {"changes": changes})
    _refresh(conn, {old.gateway, new["gateway"]}, at)


def retire_area(conn: Connection, id_: str, actor: str, at: datetime) -> None:
    member = conn.execute(
        select(meters.c.id).where(meters.c.area == id_, meters.c.valid_to.is_(None))
    ).first()
    if member is not None:
        raise Conflict(f"area {id_!r} still has meter {member.id!r}: move or retire it first")
    old = effective.retire(conn, areas, id_, at)
    audit(conn, actor, "archive.area_retire", f"area:{id_}", {"at": at})
    _refresh(conn, {old.gateway}, at)


# --- meters -----------------------------------------------------------------------------------


def _meter_values(data: MeterIn) -> dict[str, Any]:
    values = data.model_dump()
    values["point"] = data.point or data.id
    values["multiplier"] = str(data.multiplier)
    return values


def create_meter(conn: Connection, data: MeterIn, actor: str, at: datetime) -> None:
    _require_area(conn, data.area, at)
    _one_total(conn, data.area, data.role, data.id)
    values = _meter_values(data)
    effective.create(conn, meters, values, at, actor)
    audit(conn, actor, "archive.meter_create", f"meter:{data.id}", values)
    _refresh(conn, {_area_gateway(conn, data.area)}, at)


def update_meter(conn: Connection, id_: str, patch: MeterPatch, actor: str, at: datetime) -> None:
    changes = patch.model_dump(exclude_none=True)
    if "multiplier" in changes:
        changes["multiplier"] = str(changes["multiplier"])
    current = effective.get(conn, meters, id_)
    merged = {**current._mapping, **changes}
    try:
        check_address(merged["protocol"], merged["address"])
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if "area" in changes:
        _require_area(conn, changes["area"], at)
    _one_total(conn, merged["area"], merged["role"], id_)
    old, new = effective.change(conn, meters, id_, changes, at, actor)
    before = {k: old._mapping[k] for k in changes}
    audit(conn, actor, "archive.meter_update", f"meter:{id_}", {"before": before, "after": changes})
    _refresh(conn, {_area_gateway(conn, old.area), _area_gateway(conn, new["area"])}, at)


def retire_meter(conn: Connection, id_: str, actor: str, at: datetime) -> None:
    old = effective.retire(conn, meters, id_, at)
    audit(conn, actor, "archive.meter_retire", f"meter:{id_}", {"at": at})
    _refresh(conn, {_area_gateway(conn, old.area)}, at)


def replace_meter(
    conn: Connection, old_id: str, rep: ReplacementIn, actor: str, now: datetime
) -> int:
    """Retire ``old_id`` at ``rep.at`` and install ``rep.new`` at the same point; record both
    register readings so the period's energy is old_final − previous + (current − new_start)."""
    old = effective.get(conn, meters, old_id)
    if rep.new.id == old_id:
        raise InvalidRequest("the new meter needs its own id")
    if rep.new.area != old.area:
        raise InvalidRequest("a replacement stays in the old meter's area; move it separately")
    effective.retire(conn, meters, old_id, rep.at)
    values = _meter_values(rep.new)
    values["point"] = old.point
    effective.create(conn, meters, values, rep.at, actor)

    def regs(r: dict[str, Decimal]) -> str:
        return json.dumps({k: str(v) for k, v in sorted(r.items())})

    row_id = conn.execute(
        insert(meter_replacements)
        .values(
            point=old.point,
            old_meter=old_id,
            new_meter=rep.new.id,
            at=rep.at,
            old_final=regs(rep.old_final),
            new_start=regs(rep.new_start),
            reason=rep.reason,
            recorded_by=actor,
            recorded_at=now,
        )
        .returning(meter_replacements.c.id)
    ).scalar_one()
    audit(
        conn,
        actor,
        "archive.meter_replace",
        f"meter:{old_id}",
        {
            "new": rep.new.id,
            "point": old.point,
            "at": rep.at,
            "old_final": rep.old_final,
            "new_start": rep.new_start,
            "reason": rep.reason,
        },
    )
    _refresh(conn, {_area_gateway(conn, old.area)}, now)
    return int(row_id)
