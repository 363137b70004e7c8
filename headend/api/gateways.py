"""``/gateways``: the archive's gateways, their live state, sessions and archive versions.

``GET /gateways/alerts`` lists the gateways whose archive is out of sync (``headend.archive.push``
explains the alerts); each gateway's ``archive.alert`` carries the same.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from headend.api.deps import Admin, Limit, ReadConn, Viewer, WriteConn, aware, now, user_areas
from headend.archive import effective, push, service
from headend.archive.models import GatewayIn, GatewayPatch
from headend.db.errors import NotFound
from headend.db.tables import areas, gateway_sessions, gateway_state, gateways
from headend.ingest import presence

router = APIRouter(prefix="/gateways", tags=["archive"])


def _visible(conn: ReadConn, user: Any) -> set[str] | None:
    scope = user_areas(user)
    if scope is None:
        return None
    rows = conn.execute(
        select(areas.c.gateway).where(areas.c.id.in_(sorted(scope)), areas.c.valid_to.is_(None))
    ).scalars()
    return {g for g in rows if g}


def _alert_out(found: push.ArchiveAlert | None) -> dict[str, Any] | None:
    return dataclasses.asdict(found) if found is not None else None


def _out(conn: ReadConn, row: Any) -> dict[str, Any]:
    state = conn.execute(select(gateway_state).where(gateway_state.c.gateway == row.id)).first()
    archive = push.status(conn, row.id)
    health, last_status = presence.split_health(state.health) if state else ({}, None)
    return {
        **effective.plain(row),
        "online": bool(state.online) if state else None,
        "since": state.since if state else None,
        "last_seen": state.last_seen if state else None,  # any message
        "last_status": last_status,  # the last status message
        "software": state.software if state else None,
        "clock_synced": state.clock_synced if state else None,
        "health": health,
        "archive": {
            "version": archive.version,
            "issued": archive.issued,
            "meters": archive.meters,
            "reported": archive.reported,
            "in_sync": archive.in_sync,
            "alert": _alert_out(push.alert(archive, now())),
        },
    }


def _check(conn: ReadConn, user: Any, id_: str) -> None:
    visible = _visible(conn, user)
    if visible is not None and id_ not in visible:
        raise NotFound(f"gateway {id_!r} does not exist")


@router.get("")
def list_gateways(conn: ReadConn, user: Viewer, at: datetime | None = None) -> list[dict[str, Any]]:
    """Gateways in force at ``at`` (default: now) with their state and archive version."""
    aware(at, "at")
    rows = conn.execute(
        select(gateways).where(effective.in_force(gateways, at)).order_by(gateways.c.id)
    ).all()
    visible = _visible(conn, user)
    return [_out(conn, r) for r in rows if visible is None or r.id in visible]


@router.get("/alerts")
def archive_alerts(conn: ReadConn, user: Viewer) -> list[dict[str, Any]]:
    """Gateways whose archive is out of sync, worst first: one that reports a version the
    head-end never issued (``archive.forged_version``, critical), one still on an older version
    or silent ten minutes after a push (``archive.behind``, ``archive.unreported``); one whose
    messages failed their signature check in the last 24 h (``uplink.forged``, critical); one
    heard from without a registered uplink key (``uplink.unsigned``, warning)."""
    from headend.ingest.alerts import forged_uplink, unsigned_uplink

    visible = _visible(conn, user)
    found = push.alerts(conn, now()) + forged_uplink(conn, now()) + unsigned_uplink(conn, now())
    found = [a for a in found if visible is None or a.gateway in visible]
    found.sort(key=lambda a: (a.severity != "critical", a.gateway))
    return [dataclasses.asdict(a) for a in found]


@router.get("/{gateway_id}")
def get_gateway(gateway_id: str, conn: ReadConn, user: Viewer) -> dict[str, Any]:
    _check(conn, user, gateway_id)
    return _out(conn, effective.get(conn, gateways, gateway_id))


@router.get("/{gateway_id}/history")
def gateway_history(gateway_id: str, conn: ReadConn, user: Viewer) -> list[dict[str, Any]]:
    _check(conn, user, gateway_id)
    return [effective.plain(r) for r in effective.history(conn, gateways, gateway_id)]


@router.get("/{gateway_id}/sessions")
def gateway_sessions_(
    gateway_id: str, conn: ReadConn, user: Viewer, limit: Limit = 100
) -> list[dict[str, Any]]:
    """Online/offline history (from birth and last-will messages), newest first."""
    _check(conn, user, gateway_id)
    rows = conn.execute(
        select(gateway_sessions)
        .where(gateway_sessions.c.gateway == gateway_id)
        .order_by(gateway_sessions.c.id.desc())
        .limit(limit)
    ).all()
    return [{k: v for k, v in r._mapping.items() if k != "id"} for r in rows]


@router.post("", status_code=201)
def create_gateway(
    body: GatewayIn, conn: WriteConn, user: Admin, valid_from: datetime | None = None
) -> dict[str, Any]:
    at = aware(valid_from, "valid_from") or now()
    service.create_gateway(conn, body, user.name, at)
    return effective.plain(effective.get(conn, gateways, body.id, at))


@router.patch("/{gateway_id}")
def update_gateway(
    gateway_id: str,
    body: GatewayPatch,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> dict[str, Any]:
    at = aware(effective_at, "at") or now()
    service.update_gateway(conn, gateway_id, body, user.name, at)
    return effective.plain(effective.get(conn, gateways, gateway_id, at))


@router.delete("/{gateway_id}", status_code=204)
def retire_gateway(
    gateway_id: str,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> None:
    service.retire_gateway(conn, gateway_id, user.name, aware(effective_at, "at") or now())


@router.post("/{gateway_id}/archive/push")
def push_archive(gateway_id: str, conn: WriteConn, user: Admin) -> dict[str, Any]:
    """Issue the gateway's archive again (a new version, re-published retained)."""
    effective.get(conn, gateways, gateway_id)
    version = push.refresh(conn, gateway_id, now(), force=True)
    service.audit(conn, user.name, "archive.push", f"gateway:{gateway_id}", {"version": version})
    return {"gateway": gateway_id, "version": version}
