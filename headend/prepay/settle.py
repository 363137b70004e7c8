"""One account's settlement: its facts, the reminders due, and the disconnect/reconnect triggers.

``settle(conn, account, now, ctx)`` refreshes the account's supply from what its meters report,
runs the reminder machine (``headend.prepay.reminders``) on the balance rounded to the minor unit,
and opens a disconnect (final notice given, grace over, supply on, nothing pending, no failed
disconnect waiting for an operator) or — when paid — supersedes a pending disconnect (cancelled
if unsent, followed to its end if in flight) and opens a reconnect when prepayment's own trip left
the supply off.  The jobs call it for every account each pass; a top-up calls it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from headend.commands.settings import CommandSettings, ops_settings
from headend.db.dialect import insert_ignore
from headend.db.prepay_tables import (
    prepay_accounts,
    prepay_charges,
    prepay_ledger,
    prepay_reminders,
)
from headend.guards import GuardSettings
from headend.notify import outbox
from headend.prepay import (
    bills,
    disconnect,
    estimates,
    forecast,
    store,
    supply,
)
from headend.prepay.money import from_micro
from headend.prepay.reminders import Facts, Step, decide, owes
from headend.prepay.settings import PrepaySettings, prepay_settings
from headend.vee.limits import VeeSettings, vee_settings


@dataclass(frozen=True)
class Context:
    """Settings every job step reads."""

    settings: PrepaySettings
    guards: GuardSettings
    commands: CommandSettings
    vee: VeeSettings = field(default_factory=VeeSettings)

    @property
    def zone(self) -> Any:
        return self.guards.zone

    @classmethod
    def from_extra(cls, extra: dict[str, Any], source: object = None) -> Context:
        guards, cmds = ops_settings(extra, source)
        return cls(prepay_settings(extra, source), guards, cmds, vee_settings(extra, source))


def _local_text(ctx: Context, t: datetime | None) -> str:
    return "" if t is None else f"{t.astimezone(ctx.zone):%Y-%m-%d %H:%M}"


def facts_of(conn: Connection, acct: Any, now: datetime, ctx: Context) -> Facts:
    """The reminder machine's facts about one account."""
    s = ctx.settings
    # Decisions are taken on the balance the customer is shown: rounded to the minor unit.
    micro = store.balance_micro(conn, acct.id)
    balance = s.money.round(from_micro(micro))
    estimated = estimates.outstanding_micro(conn, acct.id, billed_only=acct.mode == "postpaid")
    window_start = now - timedelta(days=s.forecast_days)
    lg = prepay_ledger.c
    spent = -int(
        conn.execute(
            select(func.coalesce(func.sum(lg.amount_micro), 0)).where(
                lg.account == acct.id,
                lg.kind.in_(["charge", "reversal", "tier_trueup"]),
                lg.at > window_start,
            )
        ).scalar_one()
    )
    earliest = conn.execute(
        select(func.min(prepay_charges.c.start)).where(
            prepay_charges.c.account == acct.id,
            prepay_charges.c.state == "active",
            prepay_charges.c.end > window_start,
        )
    ).scalar_one()
    latest = conn.execute(
        select(func.max(prepay_charges.c.end)).where(
            prepay_charges.c.account == acct.id, prepay_charges.c.state == "active"
        )
    ).scalar_one()
    days = None
    if earliest is not None and latest is not None:
        covered = latest - max(earliest, window_start)
        days = forecast.days_left(balance, from_micro(spent), covered)
    sent = {
        r.key: r.at
        for r in conn.execute(
            select(prepay_reminders.c.key, prepay_reminders.c.at).where(
                prepay_reminders.c.account == acct.id, prepay_reminders.c.cycle == acct.cycle
            )
        )
    }
    return Facts(
        mode=acct.mode,
        balance=balance,
        overdraft=from_micro(acct.overdraft_micro),
        days_left=days,
        stage=acct.stage,
        cycle=acct.cycle,
        disconnect_at=acct.disconnect_at,
        sent=sent,
        overdue=bills.overdue(conn, acct.id, now) if acct.mode == "postpaid" else (),
        # so that balance + estimated is the metered balance rounded to the minor unit
        estimated=s.money.round(from_micro(micro + estimated)) - balance,
    )


def _notify(
    conn: Connection,
    acct: Any,
    template: str,
    dedupe: str,
    now: datetime,
    ctx: Context,
    **fields: Any,
) -> None:
    money = ctx.settings.money
    base = {"account": acct.id, "at": _local_text(ctx, now)}
    if "balance" not in fields:
        fields["balance"] = money.show(from_micro(store.balance_micro(conn, acct.id)))
    outbox.queue(
        conn,
        acct.id,
        template,
        acct.language,
        acct.contacts,
        {**base, **fields},
        dedupe=dedupe,
        not_before=disconnect.quiet_until(ctx.settings, ctx.zone, now),
        now=now,
    )


def _apply(
    conn: Connection, acct: Any, facts: Facts, step: Step, now: datetime, ctx: Context
) -> None:
    money = ctx.settings.money
    changes: dict[str, Any] = {}
    if step.stage != acct.stage:
        changes["stage"] = step.stage
    if step.cycle != acct.cycle:
        changes["cycle"] = step.cycle
    if step.disconnect_at != acct.disconnect_at:
        changes["disconnect_at"] = step.disconnect_at
    if any(r.key == "final" for r in step.send):
        changes["final_notice_at"] = now
    if changes:
        conn.execute(
            update(prepay_accounts).where(prepay_accounts.c.id == acct.id).values(**changes)
        )
    for key in step.record:
        conn.execute(
            insert_ignore(conn, prepay_reminders).values(
                account=acct.id, cycle=step.cycle, key=key, at=now, detail={"silent": True}
            )
        )
    for reminder in step.send:
        new = conn.execute(
            insert_ignore(conn, prepay_reminders).values(
                account=acct.id,
                cycle=step.cycle,
                key=reminder.key,
                at=now,
                detail={"balance": str(facts.balance), "days_left": str(facts.days_left)},
            )
        )
        if not new.rowcount:
            continue  # another instance sent it
        fields: dict[str, Any] = {
            "balance": money.show(facts.balance),
            "days": facts.days_left,
            "threshold": reminder.threshold,
            "disconnect_at": _local_text(ctx, step.disconnect_at),
        }
        if reminder.template == "low_balance":
            fields["threshold"] = money.show(Decimal(reminder.threshold))
        if reminder.bill is not None:
            fields.update(
                period=reminder.bill.period,
                amount=money.show(reminder.bill.unpaid),
                due=_local_text(ctx, reminder.bill.due),
            )
        _notify(
            conn,
            acct,
            reminder.template,
            f"{acct.id}:{step.cycle}:{reminder.key}",
            now,
            ctx,
            **fields,
        )
        store_audit(
            conn,
            acct.id,
            f"prepay.reminder.{reminder.key.split(':')[0]}",
            {
                "key": reminder.key,
                "cycle": step.cycle,
                "disconnect_at": step.disconnect_at.isoformat()
                if step.disconnect_at and reminder.key == "final"
                else None,
            },
            now,
        )


def store_audit(
    conn: Connection, account: str, action: str, detail: dict[str, Any], now: datetime
) -> None:
    """Audit a prepayment decision."""
    from headend import audit

    audit.append(conn, disconnect.SYSTEM.name, action, account, detail, at=now)


def _has_ledger(conn: Connection, account_id: str) -> bool:
    """Whether anything was ever paid or charged on the account."""
    lg = prepay_ledger.c
    return (
        conn.execute(select(lg.account).where(lg.account == account_id).limit(1)).first()
        is not None
    )


def settle(conn: Connection, account_id: str, now: datetime, ctx: Context) -> str | None:
    """Reminders and the disconnect/reconnect triggers of one account; the action opened, if any."""
    acct = store.account(conn, account_id)
    if acct.closed_at is not None:
        return None
    meter_ids = supply.account_meters(conn, account_id, now)
    supply.refresh(conn, acct, meter_ids, now)
    facts = facts_of(conn, acct, now, ctx)
    if facts.mode == "prepaid" and facts.stage == "ok" and not _has_ledger(conn, acct.id):
        return None  # a new account waits for its opening purchase (开户购电): nothing to remind

    def plan() -> datetime:
        told = disconnect.quiet_until(ctx.settings, ctx.zone, now)
        return disconnect.next_allowed(
            conn, ctx.guards, told + timedelta(hours=ctx.settings.grace_hours)
        )

    step = decide(facts, ctx.settings, now, plan)
    _apply(conn, acct, facts, step, now, ctx)
    acct = store.account(conn, account_id)
    pending = disconnect.open_action(conn, account_id)
    if owes(facts):
        if (
            acct.stage == "final"
            and acct.disconnect_at is not None
            and acct.disconnect_at <= now
            and acct.supply == "on"
            and pending is None
            and disconnect.given_up(conn, account_id, "disconnect") is None
        ):
            disconnect.start(conn, account_id, "disconnect", now, "final notice given; grace over")
            return "disconnect"
        return None
    paid = (
        facts.balance > ctx.settings.reconnect_threshold
        if facts.mode == "prepaid"
        else not facts.overdue
    )
    if not paid:
        return None
    if pending is not None and pending.action == "disconnect":
        ended = disconnect.supersede(conn, pending, now, "the account was paid")
        if ended == "followed":
            return None  # the trip is on its way: followed to its end, then reconnected
        if ended == "done":
            _notify(conn, acct, "disconnected", f"{acct.id}:disconnected:{pending.id}", now, ctx)
        acct = store.account(conn, account_id)
        pending = None
    if (
        acct.supply == "off"
        and pending is None
        and supply.off_by_prepayment(conn, meter_ids)
        and disconnect.given_up(conn, account_id, "reconnect") is None
    ):
        action_id = disconnect.start(conn, account_id, "reconnect", now, "the account was paid")
        _notify(conn, acct, "reconnected", f"{account_id}:reconnect:{action_id}", now, ctx)
        return "reconnect"
    return None
