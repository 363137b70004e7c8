"""Postpaid bills and the daily payments reconciliation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from headend.api.bounds import Day
from headend.api.prepay.common import (
    Id,
    Supervisor,
    Viewer,
    context,
    scoped,
)
from headend.auth.deps import ops_of
from headend.auth.http import http_errors
from headend.db import reading
from headend.db.prepay_tables import (
    prepay_bills,
)
from headend.prepay import bills
from headend.prepay.money import amount_row

router = APIRouter()


@router.get("/accounts/{account_id}/bills")
def get_bills(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Postpaid bills with what is still unpaid of each overdue one."""
    ops = ops_of(request)
    with reading(ops.engine) as conn:
        scoped(conn, user, account_id)
        rows = conn.execute(
            select(prepay_bills)
            .where(prepay_bills.c.account == account_id)
            .order_by(prepay_bills.c.period)
        ).all()
        unpaid = {o.bill: o.unpaid for o in bills.overdue(conn, account_id, ops.clock.now())}
    out = []
    for r in rows:
        item = amount_row(r._mapping)
        item["overdue_unpaid"] = str(unpaid[r.id]) if r.id in unpaid else None
        out.append(item)
    return out


@router.get("/reconciliation")
def reconciliation(request: Request, day: Day, user: Supervisor) -> dict[str, Any]:
    """Payments received on a local ``day`` against what was credited (fleet-wide users)."""
    ops = ops_of(request)
    ctx = context(request)
    with http_errors():
        user.require_fleet()
    start = datetime.combine(day, datetime.min.time(), ctx.zone)
    with reading(ops.engine) as conn:
        return bills.reconciliation(conn, start, start + timedelta(days=1))
