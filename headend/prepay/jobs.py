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
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from headend.db.dialect import insert_ignore
from headend.db.engine import writing
from headend.db.prepay_tables import (
    prepay_accounts,
    prepay_actions,
    prepay_leases,
)
from headend.notify import outbox
from headend.prepay import (
    bills,
    charging,
    disconnect,
    estimates,
    latefees,
    store,
    tiers,
)
from headend.prepay.settle import Context, _local_text, _notify, facts_of, settle
from taiqu.clock import Clock

log = logging.getLogger(__name__)
LEASE = "prepay-jobs"


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
            after_point=estimates.true_up_point,
        )
        # after the actual charges (whose transactions trued up what they replace): open gaps
        estimates.estimate_all(
            self._tx,
            self.ctx.zone,
            now=now,
            settings=self.ctx.vee,
            year_start=self.ctx.settings.year_start,
        )
        if full:  # tiers per account: the true-up on every full pass
            tiers.true_up_all(
                self._tx,
                self.ctx.zone,
                now,
                self.ctx.settings.year_start,
                timedelta(days=self.ctx.settings.lookback_days),
            )
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


__all__ = ["Context", "PrepayJobs", "facts_of", "settle", "start"]
