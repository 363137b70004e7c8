"""An account's meters, and its supply as they report it, never as the head-end intended it.

Three reports name a meter's relay state, each with its instant; the newest wins per meter:

* a relay command's per-meter result (``command_targets``): the gateway's read-back of status
  word 3 (``detail.relay``), or — for ``executed``, which the gateway reports only after the
  read-back matched — the state the action produces (trip → open, close → closed);
* the polled relay state (``readings`` of ``relay.state``: ``open`` / ``closed``);
* relay-change events (``events`` of type ``relay_change``, ``details.to``).

An account is ``off`` when any of its meters reports open, ``on`` when every meter that reported
anything reports closed, and keeps its stored state when no meter has reported anything.  ``armed``
(a close-allowed reconnect waiting for the customer's button) stays armed while the relay is open.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, func, select, update

from headend import audit
from headend.db.ops_tables import command_targets, commands
from headend.db.prepay_tables import prepay_account_points, prepay_accounts
from headend.db.tables import events, meters, readings
from protocols.model import EventType
from protocols.quantities import ENERGY_TOTAL, RELAY_STATE

RELAY_ACTIONS = {
    "relay_trip": "open",
    "relay_close_direct": "closed",
    "relay_close_allowed": "closed",
}
EVENT = EventType.RELAY_CHANGE.value


def reported(conn: Connection, meter_ids: list[str]) -> dict[str, tuple[datetime, str]]:
    """The newest reported relay state of each of ``meter_ids`` that reported one."""
    found: dict[str, tuple[datetime, str]] = {}

    def offer(meter: str, at: datetime | None, state: Any) -> None:
        if at is None or state not in ("open", "closed"):
            return
        if meter not in found or at >= found[meter][0]:
            found[meter] = (at, str(state))

    if not meter_ids:
        return found
    t = command_targets.c
    rows = conn.execute(
        select(t.meter, t.at, t.state, t.detail, commands.c.action)
        .join(commands, commands.c.id == t.command_id)
        .where(
            t.meter.in_(meter_ids),
            commands.c.action.in_(list(RELAY_ACTIONS)),
            t.state.in_(["executed", "failed", "armed"]),
        )
    ).all()
    for r in rows:
        detail = r.detail if isinstance(r.detail, dict) else {}
        relay = detail.get("relay")
        if relay is None and r.state == "executed":
            relay = RELAY_ACTIONS[r.action]
        offer(r.meter, r.at, relay)
    for v in _newest(conn, readings, readings.c.quantity == RELAY_STATE, "value", meter_ids):
        offer(v.meter, v.time, v.value)
    for e in _newest(conn, events, events.c.type == EVENT, "details", meter_ids):
        try:
            details = json.loads(e.details) if isinstance(e.details, str) else e.details
        except ValueError:
            continue
        offer(e.meter, e.time, (details or {}).get("to"))
    return found


def _newest(
    conn: Connection, table: Table, kind: ColumnElement[bool], value: str, meter_ids: list[str]
) -> Sequence[Row[Any, Any, Any]]:
    """(meter, time, ``value``) of each meter's newest row of ``table`` (readings or events) of
    one ``kind``."""
    newest = (
        select(table.c.meter, func.max(table.c.time).label("time"))
        .where(table.c.meter.in_(meter_ids), kind)
        .group_by(table.c.meter)
        .subquery()
    )
    return conn.execute(
        select(table.c.meter, table.c.time, table.c[value]).join(
            newest, (table.c.meter == newest.c.meter) & (table.c.time == newest.c.time) & kind
        )
    ).all()


def of_meters(states: dict[str, tuple[datetime, str]]) -> str | None:
    """``off`` if any meter reports open, ``on`` if all that reported report closed, else None."""
    if not states:
        return None
    return "off" if any(s == "open" for _, s in states.values()) else "on"


def refresh(conn: Connection, acct: Any, meter_ids: list[str], now: datetime) -> str:
    """Bring ``acct.supply`` in line with what its meters report; the supply now (audited)."""
    seen = of_meters(reported(conn, meter_ids))
    current = str(acct.supply)
    if seen is None or seen == current or (current == "armed" and seen == "off"):
        return current
    conn.execute(update(prepay_accounts).where(prepay_accounts.c.id == acct.id).values(supply=seen))
    audit.append(
        conn,
        "prepay",
        "prepay.supply_reported",
        acct.id,
        {"from": current, "to": seen, "meters": meter_ids},
        at=now,
    )
    return seen


def off_by_prepayment(conn: Connection, meter_ids: list[str]) -> bool:
    """Whether the supply is off by prepayment's own doing: the newest relay trip sent to these
    meters was prepayment's, or no trip was sent and no meter reported its relay open (an account
    marked off before relay reports existed).  Only then does a payment reconnect; an operator's
    manual trip, or a relay opened at the meter, is not prepayment's to undo."""
    if not meter_ids:
        return False
    t = command_targets.c
    row = conn.execute(
        select(commands.c.created_by)
        .join(command_targets, commands.c.id == t.command_id)
        .where(t.meter.in_(meter_ids), commands.c.action == "relay_trip")
        .order_by(commands.c.created_at.desc())
    ).first()
    if row is not None:
        return bool(row.created_by == "prepay")
    return of_meters(reported(conn, meter_ids)) != "off"


def account_meters(conn: Connection, account: str, now: datetime) -> list[str]:
    """The meters in force now at the account's linked points."""
    pp = prepay_account_points.c
    pts = select(pp.point).where(
        pp.account == account, pp.valid_from <= now, (pp.valid_to.is_(None)) | (pp.valid_to > now)
    )
    rows = conn.execute(
        select(meters.c.id).where(
            meters.c.point.in_(pts),
            meters.c.valid_from <= now,
            (meters.c.valid_to.is_(None)) | (meters.c.valid_to > now),
        )
    )
    return sorted(set(rows.scalars()))


def stale_meters(
    conn: Connection, meter_ids: list[str], older_than: datetime
) -> dict[str, datetime | None]:
    """The meters among ``meter_ids`` whose newest energy reading is older than ``older_than``
    (or that have none), with that reading's time: one fresh meter must not hide a silent one."""
    if not meter_ids:
        return {}
    newest = dict(
        conn.execute(
            select(readings.c.meter, func.max(readings.c.time))
            .where(readings.c.meter.in_(meter_ids), readings.c.quantity == ENERGY_TOTAL)
            .group_by(readings.c.meter)
        ).all()
    )
    return {
        m: newest.get(m)
        for m in sorted(meter_ids)
        if newest.get(m) is None or newest[m] < older_than
    }
