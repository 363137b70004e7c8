"""Effective-dated rows: each change closes the version in force and starts the next one.

A row is in force at ``t`` when ``valid_from <= t < valid_to`` (``valid_to`` NULL: open-ended).
Changes are appended at the end of an object's history: an effective time at or before the start
of the current version is a ``Conflict`` (history is not rewritten; correct it with a new version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from headend.db.errors import Conflict, NotFound

BOOKKEEPING = ("row_id", "valid_from", "valid_to", "changed_by")


def in_force(table: Table, at: datetime | None) -> ColumnElement[bool]:
    """Rows in force at ``at`` (``None``: the current, open-ended versions)."""
    if at is None:
        return table.c.valid_to.is_(None)
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def get(conn: Connection, table: Table, id_: str, at: datetime | None = None) -> Row[Any]:
    """The version of ``id_`` in force at ``at``; ``NotFound`` if none."""
    row = conn.execute(select(table).where(table.c.id == id_, in_force(table, at))).first()
    if row is None:
        when = f" at {at.isoformat()}" if at else ""
        raise NotFound(f"{table.name[:-1]} {id_!r} does not exist{when}")
    return row


def history(conn: Connection, table: Table, id_: str) -> list[Row[Any]]:
    """Every version of ``id_``, oldest first."""
    rows = conn.execute(select(table).where(table.c.id == id_).order_by(table.c.valid_from)).all()
    if not rows:
        raise NotFound(f"{table.name[:-1]} {id_!r} does not exist")
    return list(rows)


def create(
    conn: Connection, table: Table, values: dict[str, Any], valid_from: datetime, actor: str
) -> None:
    """Start a new object; ``Conflict`` if one with that id is current or starts later."""
    id_ = values["id"]
    clash = conn.execute(
        select(table.c.row_id).where(
            table.c.id == id_, or_(table.c.valid_to.is_(None), table.c.valid_to > valid_from)
        )
    ).first()
    if clash is not None:
        raise Conflict(f"{table.name[:-1]} {id_!r} already exists")
    conn.execute(insert(table).values(**values, valid_from=valid_from, changed_by=actor))


def change(
    conn: Connection, table: Table, id_: str, changes: dict[str, Any], at: datetime, actor: str
) -> tuple[Row[Any], dict[str, Any]]:
    """Close the current version at ``at`` and start one with ``changes``: (old, new values)."""
    current = get(conn, table, id_)
    if at <= current.valid_from:
        raise Conflict(
            f"{table.name[:-1]} {id_!r}: a change must take effect after the current version's "
            f"start ({current.valid_from.isoformat()})"
        )
    values = {k: v for k, v in current._mapping.items() if k not in BOOKKEEPING}
    values.update(changes)
    conn.execute(update(table).where(table.c.row_id == current.row_id).values(valid_to=at))
    conn.execute(insert(table).values(**values, valid_from=at, changed_by=actor))
    return current, values


def retire(conn: Connection, table: Table, id_: str, at: datetime) -> Row[Any]:
    """End the current version at ``at`` (the object no longer exists from then on)."""
    current = get(conn, table, id_)
    if at <= current.valid_from:
        raise Conflict(
            f"{table.name[:-1]} {id_!r}: retire after the current version's start "
            f"({current.valid_from.isoformat()})"
        )
    conn.execute(update(table).where(table.c.row_id == current.row_id).values(valid_to=at))
    return current


def plain(row: Row[Any]) -> dict[str, Any]:
    """A row as a dict without the surrogate key."""
    return {k: v for k, v in row._mapping.items() if k != "row_id"}
