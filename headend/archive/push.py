"""The versioned archive each gateway runs: built from the archive, pushed retained, reported back.

``refresh(conn, gateway, now)`` builds the gateway's ``ArchivePush`` from the meters of the areas
it serves (as in force now); when its content differs from the last version, it stores version
N+1 and queues it on ``down/archive`` (retained, so a gateway that connects later gets it).  The
gateway reports the version it runs in ``Status.archive_version`` (``gateway_state``).

Every push is signed like a command (``headend.commands.signing``: the same Ed25519 keys and
rotation, the key valid at the push's ``issued``); the gateway checks it with
``protocols.uplink.signatures.check_archive`` before applying it, so a push forged on the broker
can neither apply nor, with a made-up high version, block the real next one.  The signer is
``refresh``'s ``signer`` argument or, inside a request, the serving app's (``archive_signer``,
set by ``headend.api.deps.RequestClock`` from ``app.state.archive_signer``); with neither the
push goes unsigned and a warning is logged (gateways that require signatures refuse it, and the
gateway shows as out of sync).

``alert(status, now)`` names what is wrong with a gateway's archive for the API and console:
``archive.forged_version`` (it reports a version above any issued: it applied a push the head-end
never made), ``archive.behind`` (it still runs an older version ``behind_after`` after the newest
was issued), ``archive.unreported`` (no report at all that long after).
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select

from headend.archive.effective import in_force
from headend.commands.signing import Signer
from headend.db.tables import archive_versions, areas, gateway_state, meters
from headend.ingest import outbox
from protocols.uplink import ArchiveMeter, ArchivePush, Topics, encode

log = logging.getLogger(__name__)
archive_signer: ContextVar[Signer | None] = ContextVar("taiqu_archive_signer", default=None)
BEHIND_AFTER = timedelta(minutes=10)


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


@dataclass(frozen=True)
class ArchiveAlert:
    """Something wrong with a gateway's archive, for operators."""

    gateway: str
    kind: str  # archive.forged_version | archive.behind | archive.unreported
    severity: str  # critical | warning
    message: str
    issued: int | None
    reported: int | None
    since: datetime | None
    count: int | None = None  # how many refused messages (``uplink.forged``, headend.ingest.alerts)


def alert(
    status: ArchiveStatus, now: datetime, behind_after: timedelta = BEHIND_AFTER
) -> ArchiveAlert | None:
    """What is wrong with ``status`` at ``now`` (None: in sync, or not out of sync for long)."""
    if status.version is None or status.in_sync:
        return None
    gw, issued, reported = status.gateway, status.version, status.reported
    if reported is not None and reported > issued:
        return ArchiveAlert(
            gw,
            "archive.forged_version",
            "critical",
            f"gateway {gw} reports archive version {reported} but the head-end issued only up to "
            f"{issued}: it applied an archive the head-end never made (forged on the broker?); "
            "check its meter addresses before trusting its readings or sending it commands",
            issued,
            reported,
            status.issued,
        )
    if status.issued is not None and now - status.issued < behind_after:
        return None  # just issued: the gateway has not had the time to apply and report it
    if reported is None:
        return ArchiveAlert(
            gw,
            "archive.unreported",
            "warning",
            f"gateway {gw} has not reported an archive version; version {issued} was issued",
            issued,
            None,
            status.issued,
        )
    return ArchiveAlert(
        gw,
        "archive.behind",
        "warning",
        f"gateway {gw} runs archive version {reported}, not the issued {issued} (refused by the "
        "gateway, or it has not received it: see its status and the broker)",
        issued,
        reported,
        status.issued,
    )


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


def refresh(
    conn: Connection,
    gateway: str,
    now: datetime,
    force: bool = False,
    signer: Signer | None = None,
) -> int | None:
    """Issue a new version if the archive changed (or ``force``); return it, else None.

    The push is signed by ``signer`` (default: the serving app's, ``archive_signer``).
    """
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
    signer = signer or archive_signer.get()
    signature = signer.sign(push) if signer is not None else None
    if signature is None:
        log.warning("archive version %d for %s goes out unsigned (no signer)", version, gateway)
    else:
        push = push.model_copy(update={"signature": signature})
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


def alerts(
    conn: Connection, now: datetime, gateways: list[str] | None = None
) -> list[ArchiveAlert]:
    """The archive alerts of every gateway that was issued an archive (or of ``gateways``)."""
    names = sorted(versions_issued(conn)) if gateways is None else gateways
    found = [alert(status(conn, g), now) for g in names]
    return [a for a in found if a is not None]


def republish(conn: Connection, gateway: str, now: datetime) -> int | None:
    """Queue the latest issued version again, byte for byte (same version and signature), retained.

    A forged retained push on the broker replaces the head-end's in the retained slot, so a
    gateway that (re)connects gets only the forgery, refuses it and never sees the real one;
    republishing puts the real one back.  Returns the version, None if none was issued.
    """
    last = conn.execute(
        select(archive_versions.c.version, archive_versions.c.body)
        .where(archive_versions.c.gateway == gateway)
        .order_by(archive_versions.c.version.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    outbox.enqueue(conn, Topics(gateway).archive, bytes(last.body), now, retain=True)
    return int(last.version)


def versions_issued(conn: Connection) -> dict[str, int]:
    """The latest issued version of every gateway."""
    rows = conn.execute(
        select(archive_versions.c.gateway, func.max(archive_versions.c.version)).group_by(
            archive_versions.c.gateway
        )
    ).all()
    return {g: int(v) for g, v in rows}
