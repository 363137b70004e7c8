"""Disconnects and reconnects of accounts, always through the commands service and guard rails.

An *action* (``prepay_actions``) is the prepayment side's intent; it goes through the head-end's
command lifecycle, never around it::

    waiting ──(next_try due; data fresh; commands.create allowed)──► requested ──► done
       ▲  │                                                              │
       │  └─(refused by a guard rail, or data stale: rule + next_try)─┐   │ command failed /
       └──────────────────────────────────────────────────────────────┘◄──┘ expired / cancelled
    waiting/requested ──(no longer needed: the customer paid)──► dropped
    requested ──(reconnect command armed)──► armed ──(command executed)──► done
                                               └──(command failed: superseded)──► waiting

``armed`` (close-allowed reconnects): the meter confirmed the close allowed and waits for the
customer's button.  The head-end's part is done: the account's supply is ``armed`` (restoring,
awaiting the button), nothing is retried and no second reconnect is opened (the account is neither
``off`` nor has an open action).  The jobs still follow the command until the gateway reports the
relay closed (``executed``: supply ``on``) or superseded by a later relay command (``failed``: back
to ``waiting`` with supply ``off``, so a paid account is reconnected again).

Every attempt is appended to the action's ``history`` and audited; refusals are visible with the
rule that refused them and when the next try is.  A refused disconnect retries at the next time the
rules allow (the next disconnect window for window rules; otherwise after ``action_retry_minutes``).
Our own rule ``stale_data``: no disconnect while the account's newest energy reading is older
than ``stale_hours`` (charges from a long outage arrive late; the customer may have paid).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from headend import audit
from headend.auth.roles import Role, User
from headend.commands import directory, service
from headend.commands.settings import CommandSettings
from headend.commands.states import CANCELLABLE, State
from headend.db.errors import Conflict, InvalidRequest
from headend.db.ops_tables import commands
from headend.db.prepay_tables import prepay_accounts, prepay_actions
from headend.guards import GuardSettings
from headend.prepay import supply
from headend.prepay.settings import PrepaySettings
from headend.prepay.windows import next_allowed, quiet_until, retry_at
from headend.vee import store as vee_store
from protocols.uplink import CommandAction

SYSTEM = User("prepay", Role.OPERATOR, None)
PENDING = ("waiting", "requested")  # an action still to be carried out (one per account)
OPEN = (*PENDING, "armed")  # every action the jobs follow (``armed``: done but for the button)


def open_action(conn: Connection, account: str) -> Any:
    """The account's pending action (waiting or requested), if any; ``armed`` is not pending."""
    return conn.execute(
        select(prepay_actions)
        .where(prepay_actions.c.account == account, prepay_actions.c.state.in_(PENDING))
        .order_by(prepay_actions.c.id.desc())
    ).first()


def start(conn: Connection, account: str, action: str, now: datetime, why: str) -> int:
    """Open a disconnect or reconnect action, due now (one open action per account)."""
    row = conn.execute(
        prepay_actions.insert()
        .values(
            account=account,
            action=action,
            state="waiting",
            attempts=0,
            next_try=now,
            created_at=now,
            updated_at=now,
            history=[{"at": now.isoformat(), "outcome": "opened", "message": why}],
        )
        .returning(prepay_actions.c.id)
    ).one()
    audit.append(conn, SYSTEM.name, f"prepay.{action}_planned", account, {"why": why}, at=now)
    return int(row.id)


def _note(conn: Connection, row: Any, now: datetime, outcome: str, **values: Any) -> None:
    entry = {"at": now.isoformat(), "outcome": outcome}
    entry.update({k: v for k, v in values.items() if k in ("rule", "message", "command_id")})
    if "next_try" in values and values["next_try"] is not None:
        entry["next_try"] = values["next_try"].isoformat()
    conn.execute(
        update(prepay_actions)
        .where(prepay_actions.c.id == row.id)
        .values(history=[*row.history, entry], updated_at=now, **values)
    )


def _postpone(
    conn: Connection, row: Any, now: datetime, rule: str, message: str, s: PrepaySettings
) -> None:
    retry = now + timedelta(minutes=s.action_retry_minutes)
    _note(
        conn,
        row,
        now,
        "postponed",
        rule=rule,
        message=message,
        next_try=retry,
        attempts=row.attempts + 1,
    )
    audit.append(
        conn,
        SYSTEM.name,
        f"prepay.{row.action}_postponed",
        row.account,
        {"rule": rule, "message": message},
        at=now,
    )


def drop(conn: Connection, row: Any, now: datetime, why: str) -> None:
    """Give up an open action whose command is final, unsent (cancelled here) or absent."""
    _note(conn, row, now, "dropped", state="dropped", message=why, next_try=None)
    audit.append(
        conn, SYSTEM.name, f"prepay.{row.action}_dropped", row.account, {"why": why}, at=now
    )


def supersede(conn: Connection, row: Any, now: datetime, why: str) -> str:
    """An action no longer wanted: cancel its command if not yet sent and drop it (``dropped``);
    when the command is on its way to the meter, keep following it to its end (``followed``,
    noted once in the history); when it already executed, record that (``done``).  What the
    meter does is never lost."""
    if row.command_id:
        state = conn.execute(
            select(commands.c.state).where(commands.c.id == row.command_id)
        ).scalar()
        if state is not None and not State(state).final:
            refusal = (
                service.cancel(conn, SYSTEM, row.command_id, now=now, reason=why)
                if State(state) in CANCELLABLE
                else service.Refusal("state", f"command {row.command_id} is {state}")
            )
            if refusal is not None:
                if not any(h.get("outcome") == "superseded" for h in row.history):
                    _note(
                        conn,
                        row,
                        now,
                        "superseded",
                        message=f"{why}; command {row.command_id} is in flight "
                        f"({refusal.message}): followed to its end",
                    )
                    audit.append(
                        conn,
                        SYSTEM.name,
                        f"prepay.{row.action}_followed",
                        row.account,
                        {"why": why, "command": row.command_id, "state": state},
                        at=now,
                    )
                return "followed"
            why = f"{why}; command {row.command_id} cancelled"
        elif state == State.EXECUTED and row.state == "requested":
            _done(conn, row, now)
            return "done"
        elif state is not None:
            why = f"{why}; command {row.command_id} {state}"
    drop(conn, row, now, why)
    return "dropped"


def step(
    conn: Connection,
    row: Any,
    now: datetime,
    *,
    guards: GuardSettings,
    commands_settings: CommandSettings,
    settings: PrepaySettings,
) -> str:
    """Move one open action on; returns its outcome (``requested``, ``waiting``, a rule, ``done``
    — also when a reconnect becomes armed, the head-end's part being done)."""
    if row.state in ("requested", "armed"):
        return _follow(conn, row, now, guards, settings)
    if row.next_try is not None and row.next_try > now:
        return "waiting"
    meter_ids = supply.account_meters(conn, row.account, now)
    if not meter_ids:
        _note(
            conn,
            row,
            now,
            "postponed",
            rule="no_meters",
            message="no meters linked",
            next_try=now + timedelta(minutes=settings.action_retry_minutes),
            attempts=row.attempts + 1,
        )
        return "no_meters"
    blocked = directory.unswitchable(conn, meter_ids, now)
    if blocked:
        why = "; ".join(f"{m}: {r}" for m, r in sorted(blocked.items()))
        fail(conn, row, now, "unswitchable", f"meters that cannot be switched remotely: {why}")
        return "unswitchable"
    if row.action == "disconnect":
        held = vee_store.open_count(conn, meter_ids)
        if held:
            message = f"{held} readings of the account's meters await validation (VEE)"
            _postpone(conn, row, now, "validation", message, settings)
            return "validation"
        stale = supply.stale_meters(conn, meter_ids, now - timedelta(hours=settings.stale_hours))
        if stale:
            seen = ", ".join(
                f"{m} {t.isoformat() if t else 'never'}" for m, t in sorted(stale.items())
            )
            message = (
                f"newest readings: {seen}; no disconnect on data older than "
                f"{settings.stale_hours:g} h"
            )
            _postpone(conn, row, now, "stale_data", message, settings)
            return "stale_data"
        action = CommandAction.RELAY_TRIP
    else:
        action = CommandAction(settings.reconnect_action)
    request = service.CommandRequest(
        action=action,
        meters=meter_ids,
        valid_for=settings.command_valid_for,
        note=f"prepayment {row.action} of account {row.account}",
    )
    result = service.create(
        conn, SYSTEM, request, now=now, guards=guards, settings=commands_settings
    )
    if isinstance(result, service.Refusal):
        retry = retry_at(conn, result.rule, now, guards, settings)
        _note(
            conn,
            row,
            now,
            "refused",
            rule=result.rule,
            message=result.message,
            next_try=retry,
            attempts=row.attempts + 1,
        )
        audit.append(
            conn,
            SYSTEM.name,
            f"prepay.{row.action}_postponed",
            row.account,
            {"rule": result.rule, "message": result.message, "next_try": retry.isoformat()},
            at=now,
        )
        return result.rule
    _note(
        conn,
        row,
        now,
        "requested",
        state="requested",
        command_id=result,
        rule=None,
        message=None,
        next_try=None,
        attempts=row.attempts + 1,
    )
    return "requested"


def _follow(
    conn: Connection, row: Any, now: datetime, guards: GuardSettings, settings: PrepaySettings
) -> str:
    state = conn.execute(select(commands.c.state).where(commands.c.id == row.command_id)).scalar()
    if state == State.EXECUTED:
        _done(conn, row, now)
        return "done"
    if state == State.ARMED and row.action == "reconnect":
        if row.state == "armed":
            return "waiting"
        _note(conn, row, now, "armed", state="armed", command_id=row.command_id)
        _set_account(conn, row.account, supply="armed")
        audit.append(
            conn,
            SYSTEM.name,
            "prepay.reconnect_armed",
            row.account,
            {"command": row.command_id},
            at=now,
        )
        return "done"
    if state in (State.FAILED, State.EXPIRED, State.CANCELLED):
        if row.state == "armed":
            _set_account(conn, row.account, supply="off")
        rule = f"command_{state}"
        failures = 1 + sum(str(h.get("outcome", "")).startswith("command_") for h in row.history)
        if failures >= settings.action_max_attempts:
            fail(
                conn,
                row,
                now,
                "max_attempts",
                f"command {row.command_id} {state}; {failures} commands failed on the meter: "
                "no more automatic tries, an operator decides",
            )
            return "max_attempts"
        retry = (
            next_allowed(conn, guards, now + timedelta(minutes=settings.action_retry_minutes))
            if row.action == "disconnect"
            else now + timedelta(minutes=settings.action_retry_minutes)
        )
        _note(
            conn,
            row,
            now,
            rule,
            state="waiting",
            rule=rule,
            message=f"command {row.command_id} {state}",
            next_try=retry,
        )
        return rule
    return "requested"


def fail(conn: Connection, row: Any, now: datetime, rule: str, message: str) -> None:
    """Give up on an action visibly: state ``failed`` with its rule, audited; the jobs tell the
    operators and open no new action of the kind until an operator retries it."""
    _note(conn, row, now, "failed", state="failed", rule=rule, message=message, next_try=None)
    audit.append(
        conn,
        SYSTEM.name,
        f"prepay.{row.action}_failed",
        row.account,
        {"rule": rule, "message": message},
        at=now,
    )


def given_up(conn: Connection, account: str, action: str) -> Any:
    """The account's newest action of kind ``action`` if it failed (no automatic reopening)."""
    row = conn.execute(
        select(prepay_actions)
        .where(prepay_actions.c.account == account, prepay_actions.c.action == action)
        .order_by(prepay_actions.c.id.desc())
    ).first()
    return row if row is not None and row.state == "failed" else None


def retry(conn: Connection, account: str, reason: str, *, actor: str, now: datetime) -> int:
    """An operator's decision to try a failed action again: a new action of its kind, due now
    (audited with the reason); ``Conflict`` when the newest action did not fail."""
    newest = conn.execute(
        select(prepay_actions)
        .where(prepay_actions.c.account == account)
        .order_by(prepay_actions.c.id.desc())
    ).first()
    if newest is None or newest.state != "failed":
        raise Conflict(f"account {account} has no failed action to retry")
    if not reason.strip():
        raise InvalidRequest("reason: say why the action is tried again")
    action_id = start(conn, account, newest.action, now, f"retried by {actor}: {reason}")
    audit.append(
        conn,
        actor,
        f"prepay.{newest.action}_retry",
        account,
        {"failed": newest.id, "rule": newest.rule, "reason": reason, "action": action_id},
        at=now,
    )
    return action_id


def _done(conn: Connection, row: Any, now: datetime) -> None:
    """The action's command executed: done, and the supply as the meters now report it."""
    _note(conn, row, now, "done", state="done", command_id=row.command_id)
    if row.action == "disconnect":
        _set_account(conn, row.account, stage="off")
    acct = conn.execute(select(prepay_accounts).where(prepay_accounts.c.id == row.account))
    supply.refresh(conn, acct.one(), supply.account_meters(conn, row.account, now), now)
    audit.append(
        conn,
        SYSTEM.name,
        f"prepay.{row.action}_done",
        row.account,
        {"command": row.command_id},
        at=now,
    )


def _set_account(conn: Connection, account: str, **values: Any) -> None:
    conn.execute(update(prepay_accounts).where(prepay_accounts.c.id == account).values(**values))


__all__ = ["SYSTEM", "next_allowed", "quiet_until", "start", "step"]  # windows re-exported
