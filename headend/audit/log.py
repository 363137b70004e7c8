"""Appending to, reading and verifying the audit log.

Appends run inside the caller's transaction (the audit row commits or rolls back with the change
it records).  Each append first updates the single ``audit_head`` row: on PostgreSQL that row lock,
on SQLite the database write lock, serialises appends across every head-end instance, so ids are
gap-free and each row links to the one committed before it.  Migration ``0002_ops`` also installs
triggers that refuse UPDATE and DELETE on ``audit_log``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from headend import clock
from headend.audit.chain import GENESIS, canonical, row_hash
from headend.db.errors import StorageError
from headend.db.ops_tables import audit_head, audit_log

SUBJECT_MAX = 200
NAME_MAX = 64


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: str  # canonical JSON text
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: ``ok``, or the first broken row and what is wrong."""

    ok: bool
    rows: int
    head_id: int
    head_hash: str
    broken_id: int | None = None
    problem: str | None = None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def append(
    conn: Connection,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> int:
    """Append one row in ``conn``'s transaction and return its id.

    ``at``: when it happened; by default the head-end clock's now (``headend.clock``).
    """
    at = at or clock.now()
    locked = conn.execute(
        update(audit_head).where(audit_head.c.id == 1).values(last_id=audit_head.c.last_id)
    )
    if locked.rowcount != 1:
        raise StorageError("the audit log has no head row: run the head-end's migrations")
    last_id, last_hash = conn.execute(
        select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
    ).one()
    row = {
        "id": last_id + 1,
        "at": at,
        "actor": _clip(actor, NAME_MAX),
        "action": _clip(action, NAME_MAX),
        "subject": _clip(subject, SUBJECT_MAX),
        "detail": canonical(dict(detail or {})),
    }
    digest = row_hash(last_hash, **row)
    conn.execute(audit_log.insert().values(**row, prev_hash=last_hash, hash=digest))
    conn.execute(
        update(audit_head).where(audit_head.c.id == 1).values(last_id=row["id"], last_hash=digest)
    )
    return int(row["id"])


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail=row.detail,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def entries(
    conn: Connection,
    *,
    after: int = 0,
    limit: int = 100,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """Rows with id > ``after`` in id order, filtered (``action`` matches as a prefix)."""
    query = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if subject is not None:
        query = query.where(audit_log.c.subject == subject)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    return [_entry(r) for r in conn.execute(query)]


def count(conn: Connection) -> int:
    """How many rows the log holds."""
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def _walk(conn: Connection, batch: int = 1000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = entries(conn, after=after, limit=batch)
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id


def verify(conn: Connection) -> Verification:
    """Recompute the whole chain; report the first row that does not link or hash correctly."""
    head = conn.execute(
        select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
    ).one_or_none()
    if head is None:
        return Verification(False, 0, 0, GENESIS, None, "the audit head row is missing")
    head_id, head_hash = int(head.last_id), str(head.last_hash)
    prev_id, prev_hash, rows = 0, GENESIS, 0

    def broken(entry_id: int | None, problem: str) -> Verification:
        return Verification(False, rows, head_id, head_hash, entry_id, problem)

    for e in _walk(conn):
        if e.id != prev_id + 1:
            return broken(e.id, f"row {prev_id + 1} is missing (next row is {e.id})")
        if e.prev_hash != prev_hash:
            return broken(e.id, "prev_hash does not match the previous row's hash")
        expected = row_hash(
            prev_hash,
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject=e.subject,
            detail=e.detail,
        )
        if e.hash != expected:
            return broken(e.id, "hash does not match the row's contents (row altered)")
        prev_id, prev_hash, rows = e.id, e.hash, rows + 1
    if (prev_id, prev_hash) != (head_id, head_hash):
        if prev_id < head_id:
            return broken(prev_id + 1, f"rows {prev_id + 1}…{head_id} are missing (truncated)")
        return broken(prev_id, "the head does not point at the last row")
    return Verification(True, rows, head_id, head_hash)
