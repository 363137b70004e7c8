"""The reminder state machine of one account: facts in, what to send and the next state out.

Prepaid::

    ok ──balance ≤ a threshold, or days left ≤ a threshold──► notice    (low_balance / low_days)
    ok, notice ──balance ≤ final_notice_balance──────────────► final     (final_notice, naming the
                                                                          planned disconnect time)
    final ──(disconnect job: planned time passed, balance ≤ −overdraft, rules allow)──► off
    notice, final, off ──balance > every threshold──► ok      (a new cycle)
    final, off ──balance > final_notice_balance──────► notice  (a new cycle)

Estimated consumption (``Facts.estimated``) lowers the balance the low-balance notices see, but the
final notice and the disconnect look at the metered balance only: no disconnect on an estimate.

Postpaid: an overdue unpaid bill sends ``arrears`` once per bill (stage ``notice``); when the first
arrears reminder is ``grace`` old and the bill is still unpaid, ``final_notice`` (stage ``final``);
paying every overdue bill returns to ``ok`` in a new cycle.

No duplicate per threshold: every reminder is keyed (``balance:20``, ``days:3``, ``final``,
``arrears:<bill>``) and recorded once per (account, cycle); crossing a low threshold also records
the higher ones, so a customer falling from 60 straight to 10 hears once, about 20.  A new cycle
starts when a payment lifts the account out of its stage, so the thresholds can warn again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from headend.prepay.settings import PrepaySettings

STAGES = ("ok", "notice", "final", "off")


@dataclass(frozen=True)
class Overdue:
    """A postpaid bill past its due date and not paid in full."""

    bill: str
    period: str
    unpaid: Decimal
    due: datetime


@dataclass(frozen=True)
class Facts:
    """What the machine knows about one account now."""

    mode: str
    balance: Decimal
    overdraft: Decimal
    days_left: Decimal | None
    stage: str
    cycle: int
    disconnect_at: datetime | None
    sent: Mapping[str, datetime] = field(default_factory=dict)  # this cycle's keys → when
    overdue: Sequence[Overdue] = ()
    # What active estimates debit (≥ 0): never a reason to disconnect (headend.prepay.estimates).
    estimated: Decimal = Decimal(0)

    @property
    def metered_balance(self) -> Decimal:
        """The balance without estimated consumption: what a final notice and a disconnect use."""
        return self.balance + self.estimated


@dataclass(frozen=True)
class Reminder:
    """One message to send, keyed for "no duplicate"."""

    key: str
    template: str
    threshold: str = ""
    bill: Overdue | None = None


@dataclass(frozen=True)
class Step:
    """The account's next state, the keys to record and the reminders to send."""

    stage: str
    cycle: int
    disconnect_at: datetime | None
    record: tuple[str, ...] = ()
    send: tuple[Reminder, ...] = ()


def _prepaid(f: Facts, s: PrepaySettings, plan: Callable[[], datetime]) -> Step:
    top = max(s.balance_thresholds, default=s.final_notice_balance)
    if (
        f.stage != "ok"
        and f.balance > top
        and (f.days_left is None or not s.days_thresholds or f.days_left > max(s.days_thresholds))
    ):
        return Step("ok", f.cycle + 1, None)
    if f.stage in ("final", "off") and f.metered_balance > s.final_notice_balance:
        return Step("notice", f.cycle + 1, None)
    record: list[str] = []
    send: list[Reminder] = []
    if f.metered_balance <= s.final_notice_balance:
        record += [f"balance:{t}" for t in s.balance_thresholds]
        if "final" not in f.sent:
            send.append(Reminder("final", "final_notice"))
            return Step("final", f.cycle, plan(), tuple(record), tuple(send))
        return Step(f.stage, f.cycle, f.disconnect_at, tuple(record))
    crossed = [t for t in s.balance_thresholds if f.balance <= t]
    if crossed:
        lowest = min(crossed)
        record += [f"balance:{t}" for t in crossed if t != lowest]
        if f"balance:{lowest}" not in f.sent:
            send.append(Reminder(f"balance:{lowest}", "low_balance", str(lowest)))
    if f.days_left is not None:
        days = [d for d in s.days_thresholds if f.days_left <= d]
        if days:
            lowest_day = min(days)
            record += [f"days:{d}" for d in days if d != lowest_day]
            if f"days:{lowest_day}" not in f.sent:
                send.append(Reminder(f"days:{lowest_day}", "low_days", str(lowest_day)))
    stage = "notice" if (crossed or send or f.stage == "notice") else f.stage
    return Step(stage, f.cycle, f.disconnect_at, tuple(record), tuple(send))


def _postpaid(f: Facts, s: PrepaySettings, plan: Callable[[], datetime], now: datetime) -> Step:
    if not f.overdue:
        if f.stage != "ok":
            return Step("ok", f.cycle + 1, None)
        return Step("ok", f.cycle, None)
    send = [
        Reminder(f"arrears:{o.bill}", "arrears", bill=o)
        for o in f.overdue
        if f"arrears:{o.bill}" not in f.sent
    ]
    first = min((t for k, t in f.sent.items() if k.startswith("arrears:")), default=None)
    if (
        "final" not in f.sent
        and first is not None
        and now >= first + timedelta(hours=s.grace_hours)
    ):
        send.append(Reminder("final", "final_notice"))
        return Step("final", f.cycle, plan(), (), tuple(send))
    stage = f.stage if f.stage in ("final", "off") else "notice"
    return Step(stage, f.cycle, f.disconnect_at, (), tuple(send))


def decide(
    facts: Facts, settings: PrepaySettings, now: datetime, plan: Callable[[], datetime]
) -> Step:
    """The next step for one account; ``plan()`` gives the disconnect time a final notice names."""
    if facts.mode == "postpaid":
        return _postpaid(facts, settings, plan, now)
    return _prepaid(facts, settings, plan)


def owes(facts: Facts) -> bool:
    """Whether the account is at or below its allowed overdraft (prepaid) or in arrears beyond it
    (postpaid): the money condition of a disconnect."""
    if facts.mode == "postpaid":
        unpaid = sum((o.unpaid for o in facts.overdue), Decimal(0))
        return unpaid - facts.estimated > facts.overdraft
    return facts.metered_balance <= -facts.overdraft
