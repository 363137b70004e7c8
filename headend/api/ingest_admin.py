"""``/ingest``: dead letters, unregistered meters (to resolve), streams and announced gaps."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from headend.api.deps import Admin, Limit, ReadConn, WriteConn, now
from headend.archive import service
from headend.db.errors import NotFound
from headend.db.tables import dead_letters, gaps, streams, unregistered

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.get("/dead-letters")
def list_dead_letters(conn: ReadConn, user: Admin, limit: Limit = 100) -> list[dict[str, Any]]:
    """Messages that failed the contract, newest first, with their raw bytes (base64)."""
    rows = conn.execute(select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit))
    return [
        {
            **{k: v for k, v in r._mapping.items() if k != "payload"},
            "payload_b64": base64.b64encode(r.payload).decode(),
            "size": len(r.payload),
        }
        for r in rows
    ]


@router.get("/unregistered")
def list_unregistered(conn: ReadConn, user: Admin, resolved: bool = False) -> list[dict[str, Any]]:
    """Meters that sent readings but are not in the archive."""
    query = select(unregistered).order_by(unregistered.c.gateway, unregistered.c.meter)
    query = query.where(
        unregistered.c.resolved_at.is_not(None)
        if resolved
        else unregistered.c.resolved_at.is_(None)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(min_length=1, max_length=500)


@router.post("/unregistered/{gateway}/{meter}/resolve")
def resolve_unregistered(
    gateway: str, meter: str, body: Resolution, conn: WriteConn, user: Admin
) -> dict[str, Any]:
    """Mark an unregistered meter handled (added to the archive, or explained)."""
    where = (unregistered.c.gateway == gateway, unregistered.c.meter == meter)
    if conn.execute(select(unregistered.c.meter).where(*where)).first() is None:
        raise NotFound(f"no unregistered meter {meter!r} on gateway {gateway!r}")
    conn.execute(
        update(unregistered)
        .where(*where)
        .values(resolved_at=now(), resolved_by=user.name, resolution=body.resolution)
    )
    service.audit(
        conn,
        user.name,
        "ingest.unregistered_resolve",
        f"meter:{meter}",
        {"gateway": gateway, "resolution": body.resolution},
    )
    return dict(conn.execute(select(unregistered).where(*where)).one()._mapping)


@router.get("/streams")
def list_streams(conn: ReadConn, user: Admin) -> list[dict[str, Any]]:
    """Per (gateway, epoch): the first seq seen, the gap-free run and the highest stored."""
    rows = conn.execute(select(streams).order_by(streams.c.gateway, streams.c.first_received))
    return [dict(r._mapping) for r in rows]


@router.get("/gaps")
def list_gaps(conn: ReadConn, user: Admin, limit: Limit = 100) -> list[dict[str, Any]]:
    """Gaps the gateways announced (records dropped before acknowledgement)."""
    rows = conn.execute(select(gaps).order_by(gaps.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
