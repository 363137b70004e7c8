"""What the console shows from ``headend.prepay`` and ``headend.notify``: a meter's account,
balance, ledger, reminders sent, and the notifications log.

Read-only, through the prepay store and tables; every function returns None when those packages
are not installed yet, so a page can say "not available yet".  Scope checks are the caller's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select


def _parts() -> tuple[Any, Any, Any] | None:
    try:
        from headend.db import prepay_tables
        from headend.prepay import money, store
    except ImportError:
        return None
    return prepay_tables, store, money


def account_of_point(conn: Connection, point: str, at: datetime) -> dict[str, Any] | None:
    """The account a metering point is linked to at ``at`` with its balance, ledger and
    reminders; ``{}`` when the point has no account, None when prepay is not installed."""
    parts = _parts()
    if parts is None:
        return None
    tables, store, money = parts
    links = tables.prepay_account_points
    link = conn.execute(
        select(links.c.account)
        .where(
            links.c.point == point,
            links.c.valid_from <= at,
            (links.c.valid_to.is_(None)) | (links.c.valid_to > at),
        )
        .order_by(links.c.valid_from.desc())
    ).first()
    if link is None:
        return {}
    account = conn.execute(
        select(tables.prepay_accounts).where(tables.prepay_accounts.c.id == link.account)
    ).first()
    if account is None:
        return {}
    ledger = store.ledger(conn, link.account, limit=100_000)[-50:]
    reminders = conn.execute(
        select(tables.prepay_reminders)
        .where(tables.prepay_reminders.c.account == link.account)
        .order_by(tables.prepay_reminders.c.id.desc())
        .limit(50)
    ).all()
    return {
        "id": account.id,
        "name": account.name,
        "mode": account.mode,
        "stage": account.stage,
        "supply": account.supply,
        "balance": str(money.from_micro(store.balance_micro(conn, link.account))),
        "ledger": list(reversed(ledger)),
        "reminders": [dict(r._mapping) for r in reminders],
        "notifications": notifications(conn, None, account=link.account, limit=50) or [],
    }


def notifications(
    conn: Connection,
    areas: frozenset[str] | None,
    *,
    account: str | None = None,
    state: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]] | None:
    """Notifications newest first (no raw URLs), limited to accounts of ``areas`` if given."""
    parts = _parts()
    if parts is None:
        return None
    tables = parts[0]
    n, accounts = tables.notifications, tables.prepay_accounts
    query = (
        select(
            n.c.id,
            n.c.account,
            n.c.template,
            n.c.language,
            n.c.target,
            n.c.title,
            n.c.state,
            n.c.attempts,
            n.c.last_error,
            n.c.created_at,
            n.c.sent_at,
            accounts.c.area,
        )
        .select_from(n.outerjoin(accounts, accounts.c.id == n.c.account))
        .order_by(n.c.id.desc())
        .limit(limit)
    )
    if account is not None:
        query = query.where(n.c.account == account)
    if state is not None:
        query = query.where(n.c.state == state)
    if areas is not None:
        query = query.where(accounts.c.area.in_(sorted(areas)))
    return [dict(r._mapping) for r in conn.execute(query)]


def account_detail(
    conn: Connection, user: Any, account_id: str, settings: Any, now: datetime
) -> dict[str, Any]:
    """One account for its page (the user's areas only): the overview (``to_restore``, a reconnect
    owed, late fees, reversals, estimates), bills, actions, points and the latest ledger rows."""
    from headend.prepay import bills, overview, store

    tables = _parts()
    assert tables is not None  # the account page is mounted only with prepay installed
    acct = store.account(conn, account_id)
    user.require_areas([acct.area])
    b = tables[0].prepay_bills
    unpaid = {o.bill: o.unpaid for o in bills.overdue(conn, account_id, now)}
    bill_rows = []
    for r in conn.execute(select(b).where(b.c.account == account_id).order_by(b.c.period.desc())):
        item = tables[2].amount_row(r._mapping)
        item["overdue_unpaid"] = unpaid.get(r.id)
        bill_rows.append(item)
    a = tables[0].prepay_actions
    actions = conn.execute(
        select(a).where(a.c.account == account_id).order_by(a.c.id.desc()).limit(20)
    ).all()
    return {
        "account": acct,
        "overview": overview.summary(conn, acct, settings),
        "bills": bill_rows,
        "actions": [dict(r._mapping) for r in actions],
        "points": store.points(conn, account_id),
        "ledger": list(reversed(store.ledger(conn, account_id, limit=100_000)[-50:])),
    }


def account_list(
    conn: Connection, user: Any, settings: Any, *, stage: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Accounts of the user's areas with balance, ``to_restore`` and whether a reconnect is owed
    (an open disconnect followed to its end after the account was paid)."""
    from headend.prepay import disconnect, overview, store

    parts = _parts()
    assert parts is not None
    accounts, actions = parts[0].prepay_accounts, parts[0].prepay_actions
    query = select(accounts).order_by(accounts.c.id).limit(limit)
    if stage:
        query = query.where(accounts.c.stage == stage)
    if user.areas is not None:
        query = query.where(accounts.c.area.in_(sorted(user.areas)))
    rows = conn.execute(query).all()
    balances = store.balances(conn)
    owed = {
        r.account
        for r in conn.execute(
            select(actions.c.account, actions.c.history).where(
                actions.c.action == "disconnect", actions.c.state.in_(disconnect.OPEN)
            )
        )
        if any(h.get("outcome") == "superseded" for h in r.history)
    }
    out = []
    for a in rows:
        micro = balances.get(a.id, 0)
        restore = overview.to_restore(settings, a, micro)
        out.append(
            {
                "id": a.id,
                "name": a.name,
                "area": a.area,
                "mode": a.mode,
                "stage": a.stage,
                "supply": a.supply,
                "balance": str(settings.money.round(parts[2].from_micro(micro))),
                "to_restore": None if restore is None or restore <= 0 else str(restore),
                "reconnect_owed": a.id in owed,
            }
        )
    return out
