"""The versioned archive each gateway runs: built from the archive, pushed retained, reported back.

``refresh(conn, gateway, now)`` builds the gateway's ``ArchivePush`` from the meters of the areas
it serves (as in force now); when its content differs from the last version, it stores version
N+1 and queues it on ``down/archive`` (retained, so a gateway that connects later gets it).  The
gateway reports the version it runs in ``Status.archive_version`` (``gateway_state``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from headend.archive.effective import in_force
from headend.db.tables import archive_versions, areas, gateway_state, meters
from headend.ingest import outbox
from protocols.uplink import ArchiveMeter, ArchivePush, Topics, encode


@dataclass(frozen=True)
class ArchiveStatus:
    """What a gateway should run and what it reports."""

    gateway: str
    version: int | None
    issued: datetime | None
    meters: int
    reported: int | None

    @property
    def in_sync(self) -> bool:
        return self.version is not None and self.version == self.reported


def gateway_meters(
    conn: Connection, gateway: str, at: datetime | None = None
) -> list[ArchiveMeter]:
    """The meters of the areas ``gateway`` serves, as in force at ``at`` (default: now)."""
    served = select(areas.c.id).where(areas.c.gateway == gateway, in_force(areas, at))
    rows = conn.execute(
        select(
            meters.c.id,
            meters.c.bus,
            meters.c.protocol,
            meters.c.address,
            meters.c.model,
            meters.c.role,
        )
        .where(meters.c.area.in_(served), in_force(meters, at))
        .order_by(meters.c.id)
    ).all()
    return [
        ArchiveMeter(
            id=r.id,
            bus=r.bus,
            protocol=r.protocol,
            address=r.address,
            model=r.model,
            role="area_total" if r.role == "area_total" else "customer",
        )
        for r in rows
    ]


def _digest(items: list[ArchiveMeter]) -> str:
    body = json.dumps([m.model_dump(mode="json") for m in items], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def refresh(conn: Connection, gateway: str, now: datetime, force: bool = False) -> int | None:
    """Issue a new version if the archive changed (or ``force``); return it, else None."""
    items = gateway_meters(conn, gateway)
    digest = _digest(items)
    last = conn.execute(
        select(archive_versions.c.version, archive_versions.c.digest)
        .where(archive_versions.c.gateway == gateway)
        .order_by(archive_versions.c.version.desc())
        .limit(1)
    ).first()
    if last is not None and last.digest == digest and not force:
        return None
    version = (last.version + 1) if last is not None else 1
    push = ArchivePush(gateway=gateway, version=version, issued=now, meters=tuple(items))
    body = encode(push)
    conn.execute(
        insert(archive_versions).values(
            gateway=gateway,
            version=version,
            issued=now,
            digest=digest,
            body=body,
            meters=len(items),
        )
    )
    outbox.enqueue(conn, Topics(gateway).archive, body, now, retain=True)
    return version


def status(conn: Connection, gateway: str) -> ArchiveStatus:
    """The latest version issued to ``gateway`` and the one it reports running."""
    last = conn.execute(
        select(archive_versions.c.version, archive_versions.c.issued, archive_versions.c.meters)
        .where(archive_versions.c.gateway == gateway)
        .order_by(archive_versions.c.version.desc())
        .limit(1)
    ).first()
    reported = conn.execute(
        select(gateway_state.c.archive_version).where(gateway_state.c.gateway == gateway)
    ).scalar()
    return ArchiveStatus(
        gateway,
        last.version if last else None,
        last.issued if last else None,
        last.meters if last else 0,
        reported,
    )


def versions_issued(conn: Connection) -> dict[str, int]:
    """The latest issued version of every gateway."""
    rows = conn.execute(
        select(archive_versions.c.gateway, func.max(archive_versions.c.version)).group_by(
            archive_versions.c.gateway
        )
    ).all()
    return {g: int(v) for g, v in rows}
