"""The prepayment jobs: charge, remind, disconnect/reconnect, deliver notifications, issue bills.

``PrepayJobs.run_once()`` is one pass of every job; ``run(stop)`` loops every ``job_interval``
(clock time).  Safe with two head-end instances: a pass runs only under the ``prepay_leases`` row
(taken by a conditional UPDATE that one instance wins; it lapses if its holder dies), and every
write is idempotent by a unique key anyway (charges, ledger references, reminder keys,
notification dedupe keys, one open action per account).  ``settle(conn, account, …)`` is the
per-account step (reminders, disconnect and reconnect triggers); a top-up calls it at once so the
reconnect does not wait for the next pass.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from headend.commands.settings import CommandSettings, ops_settings
from headend.db.dialect import insert_ignore
from headend.db.engine import writing
from headend.db.prepay_tables import (
    prepay_accounts,
    prepay_actions,
    prepay_charges,
    prepay_leases,
    prepay_ledger,
    prepay_reminders,
)
from headend.guards import GuardSettings
from headend.notify import outbox
from headend.prepay import (
    bills,
    charging,
    disconnect,
    forecast,
    latefees,
    store,
    supply,
    tiers,
)
from headend.prepay.money import from_micro
from headend.prepay.reminders import Facts, Step, decide, owes
from headend.prepay.settings import PrepaySettings, prepay_settings
from headend.vee.limits import VeeSettings, vee_settings
from taiqu.clock import Clock

log = logging.getLogger(__name__)
LEASE = "prepay-jobs"


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
    balance = s.money.round(from_micro(store.balance_micro(conn, acct.id)))
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


def settle(conn: Connection, account_id: str, now: datetime, ctx: Context) -> str | None:
    """Reminders and the disconnect/reconnect triggers of one account; the action opened, if any."""
    acct = store.account(conn, account_id)
    if acct.closed_at is not None:
        return None
    meter_ids = disconnect.account_meters(conn, account_id, now)
    supply.refresh(conn, acct, meter_ids, now)
    facts = facts_of(conn, acct, now, ctx)

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


@dataclass
class PrepayJobs:
    """Every prepayment job, one pass at a time, under a lease."""

    engine: Engine
    ctx: Context
    clock: Clock
    send: outbox.Send = outbox.apprise_send
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    full_every: timedelta = timedelta(hours=1)
    _last_full: datetime | None = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with writing(self.engine) as conn:
            yield conn

    def _lease(self, now: datetime) -> bool:
        ttl = timedelta(seconds=max(60.0, 3 * self.ctx.settings.job_interval))
        lc = prepay_leases.c
        with writing(self.engine) as conn:
            conn.execute(
                insert_ignore(conn, prepay_leases).values(
                    name=LEASE, holder=self.instance, until=now + ttl
                )
            )
            won = conn.execute(
                update(prepay_leases)
                .where(lc.name == LEASE, (lc.holder == self.instance) | (lc.until < now))
                .values(holder=self.instance, until=now + ttl)
            )
            return bool(won.rowcount)

    def charge(self, now: datetime) -> charging.PointResult:
        full = self._last_full is None or now - self._last_full >= self.full_every
        result = charging.charge_all(
            self._tx,
            self.ctx.zone,
            now=now,
            full=full,
            lookback=timedelta(days=self.ctx.settings.lookback_days),
            vee=self.ctx.vee,
            year_start=self.ctx.settings.year_start,
        )
        if full:  # tiers per account: the true-up on every full pass
            tiers.true_up_all(self._tx, self.ctx.zone, now, self.ctx.settings.year_start)
            self._last_full = now
        return result

    def remind(self, now: datetime) -> int:
        with writing(self.engine) as conn:
            ids = list(
                conn.execute(
                    select(prepay_accounts.c.id).where(prepay_accounts.c.closed_at.is_(None))
                ).scalars()
            )
        opened = 0
        for account_id in ids:
            try:
                with writing(self.engine) as conn:
                    opened += settle(conn, account_id, now, self.ctx) is not None
            except Exception:
                log.exception("reminders for account %s failed", account_id)
        return opened

    def act(self, now: datetime) -> dict[str, int]:
        with writing(self.engine) as conn:
            ids = list(
                conn.execute(
                    select(prepay_actions.c.id).where(prepay_actions.c.state.in_(disconnect.OPEN))
                ).scalars()
            )
        outcomes: dict[str, int] = {}
        for action_id in ids:
            try:
                with writing(self.engine) as conn:
                    outcome = self._act_one(conn, action_id, now)
            except Exception:
                log.exception("prepay action %s failed", action_id)
                continue
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    def _act_one(self, conn: Connection, action_id: int, now: datetime) -> str:
        row = conn.execute(select(prepay_actions).where(prepay_actions.c.id == action_id)).one()
        if row.state not in disconnect.OPEN:
            return str(row.state)
        outcome = disconnect.step(
            conn,
            row,
            now,
            guards=self.ctx.guards,
            commands_settings=self.ctx.commands,
            settings=self.ctx.settings,
        )
        acct = store.account(conn, row.account)
        if outcome == "done" and row.action == "disconnect":
            _notify(conn, acct, "disconnected", f"{acct.id}:disconnected:{row.id}", now, self.ctx)
            # Paid while the trip was in flight: the reconnect follows at once.
            if settle(conn, acct.id, now, self.ctx) == "reconnect":
                self._act_one(conn, disconnect.open_action(conn, acct.id).id, now)
        elif outcome in ("unswitchable", "max_attempts") and self.ctx.settings.operator_urls:
            outbox.queue(
                conn,
                acct.id,
                "action_failed",
                "en",
                self.ctx.settings.operator_urls,
                {"account": acct.id, "action": row.action, "reason": outcome},
                dedupe=f"ops:{row.id}:failed",
                not_before=now,
                now=now,
            )
        elif outcome not in ("requested", "waiting", "done") and self.ctx.settings.operator_urls:
            after = conn.execute(
                select(prepay_actions.c.next_try).where(prepay_actions.c.id == row.id)
            ).scalar()
            outbox.queue(
                conn,
                acct.id,
                "disconnect_refused",
                "en",
                self.ctx.settings.operator_urls,
                {"account": acct.id, "reason": outcome, "at": _local_text(self.ctx, after)},
                dedupe=f"ops:{row.id}:{outcome}",
                not_before=now,
                now=now,
            )
        return outcome

    def deliver(self, now: datetime) -> outbox.Delivery:
        return outbox.deliver_due(
            self.engine,
            now,
            retries=self.ctx.settings.notify_retries,
            retry_seconds=self.ctx.settings.notify_retry_seconds,
            send=self.send,
            instance=self.instance,
        )

    def bill(self, now: datetime) -> int:
        with writing(self.engine) as conn:
            s = self.ctx.settings
            issued = bills.issue_bills(
                conn, now, self.ctx.zone, s.money, s.bill_due_days, s.bill_cutoff_hours
            )
            if s.late_fees:
                latefees.accrue(conn, now, self.ctx.zone, s.money, s.late_fees)
            return issued

    def run_once(self) -> dict[str, Any]:
        """One pass of every job (nothing when another instance holds the lease)."""
        now = self.clock.now()
        if not self._lease(now):
            return {"lease": False}
        charged = self.charge(now)
        issued = self.bill(now)
        opened = self.remind(now)
        acted = self.act(now)
        delivered = self.deliver(now)
        return {
            "lease": True,
            "charged": charged.created,
            "reversed": charged.reversed,
            "bills": issued,
            "actions_opened": opened,
            "actions": acted,
            "sent": delivered.sent,
            "retrying": delivered.retrying,
            "failed": delivered.failed,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set (a failing pass is logged and retried)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("prepayment pass failed; retrying")
            try:
                await asyncio.wait_for(
                    stop.wait(), self.clock.wall_seconds(self.ctx.settings.job_interval)
                )
            except TimeoutError:
                pass


def start(app: Any) -> asyncio.Task[None]:
    """Start the jobs for a FastAPI app (``app.state``: engine, settings, optional clock)."""
    from taiqu.clock import RealClock

    settings = app.state.settings
    jobs = PrepayJobs(
        app.state.engine,
        Context.from_extra(settings.extra, settings.source),
        getattr(app.state, "clock", None) or RealClock(),
    )
    stop = asyncio.Event()
    app.state.prepay_stop = stop
    return asyncio.get_running_loop().create_task(jobs.run(stop))
