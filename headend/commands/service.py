"""Creating, approving and cancelling commands: roles, area scopes and guard rails, audited.

Requests that are refused (by a guard rail, a role, an area scope or the approval rules) return a
``Refusal`` instead of raising, so the caller can commit the audit row that records it and then
answer 403/409.  Malformed requests raise ``InvalidRequest`` / ``NotFound`` (nothing is stored).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from headend import audit
from headend.auth.roles import Role, User
from headend.commands import clockset, directory, params
from headend.commands.settings import CommandSettings
from headend.commands.states import CANCELLABLE, State
from headend.db.errors import InvalidRequest, NotFound
from headend.db.ops_tables import command_dispatches, command_targets, commands, users
from headend.guards import DISCONNECTS, GuardSettings, MeterFacts, evaluate
from headend.guards import store as guard_store
from protocols.model import meter_zone
from protocols.uplink import CommandAction

# What operators may ask for through the API (archive pushes belong to the archive service).
ALLOWED_ACTIONS = frozenset(CommandAction) - {CommandAction.ARCHIVE_UPDATE}
# Actions that lift a protection need a supervisor even to create.
SUPERVISOR_ACTIONS = frozenset({CommandAction.KEEP_POWER_OFF})
# The meter's remote-control function (DL/T 645 0x1C): relay, alarm, keep-power.
CONTROL_ACTIONS = frozenset(
    {
        CommandAction.RELAY_TRIP,
        CommandAction.RELAY_CLOSE_ALLOWED,
        CommandAction.RELAY_CLOSE_DIRECT,
        CommandAction.ALARM,
        CommandAction.ALARM_RELEASE,
        CommandAction.KEEP_POWER_ON,
        CommandAction.KEEP_POWER_OFF,
    }
)


@dataclass(frozen=True)
class CommandRequest:
    """What an operator asks for: an action on meters and/or whole areas."""

    action: CommandAction
    meters: Sequence[str] = ()
    areas: Sequence[str] = ()
    params: dict[str, Any] = field(default_factory=dict)
    valid_for: int | None = None  # seconds
    note: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A refused request: the rule that refused it and why (``kind`` picks 403 or 409)."""

    rule: str
    message: str
    kind: Literal["forbidden", "conflict"] = "conflict"
    command: str | None = None


def _refuse(
    conn: Connection, user: User, now: datetime, refusal: Refusal, detail: dict[str, Any]
) -> Refusal:
    audit.append(
        conn,
        user.name,
        "command.refused",
        refusal.command or detail.get("action", "command"),
        {**detail, "rule": refusal.rule, "message": refusal.message},
        at=now,
    )
    return refusal


def _new_id(now: datetime) -> str:
    return f"c{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def resolve_targets(
    conn: Connection, request: CommandRequest, now: datetime, limit: int
) -> list[MeterFacts]:
    """The meters a request names (listed, plus every meter of the listed areas)."""
    if not request.meters and not request.areas:
        raise InvalidRequest("name the meters or the areas the command is for")
    found = directory.meter_facts(conn, request.meters, now)
    unknown = sorted(set(request.meters) - set(found))
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise NotFound(f"{len(unknown)} meters are not in the archive: {shown}")
    if request.areas:
        missing = sorted(set(request.areas) - directory.known_areas(conn, request.areas, now))
        if missing:
            raise NotFound(f"unknown areas {missing}")
        expanded = directory.area_meters(conn, request.areas, now)
        if request.action in CONTROL_ACTIONS:  # an area's switchable meters only
            skip = directory.unswitchable(conn, set(expanded) - set(found), now)
            expanded = {k: v for k, v in expanded.items() if k not in skip}
        found.update(expanded)
    if request.action in CONTROL_ACTIONS and request.meters:
        named = directory.unswitchable(conn, request.meters, now)
        if named:
            meter, why = sorted(named.items())[0]
            more = f" (and {len(named) - 1} more)" if len(named) > 1 else ""
            raise InvalidRequest(f"meter {meter} cannot be switched: {why}{more}")
    if not found:
        raise InvalidRequest(f"the areas {sorted(request.areas)} have no meters")
    if len(found) > limit:
        raise InvalidRequest(f"{len(found)} meters in one command; the limit is {limit}")
    orphans = sorted(m.meter for m in found.values() if not m.gateway)
    if orphans:
        raise InvalidRequest(f"meters without a gateway (their area has none): {orphans[:10]}")
    return [found[k] for k in sorted(found)]


def _serialise_operator(conn: Connection, name: str) -> None:
    """Hold the operator's user row (PostgreSQL) so their parallel requests count one by one.

    SQLite's write transactions are serial already (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(users.c.id).where(users.c.name == name).with_for_update())


def create(
    conn: Connection,
    user: User,
    request: CommandRequest,
    *,
    now: datetime,
    guards: GuardSettings,
    settings: CommandSettings,
) -> str | Refusal:
    """Create a command (its id), or the ``Refusal`` that stopped it (audited either way)."""
    action = request.action
    base = {"action": action, "meters": len(request.meters), "areas": sorted(request.areas)}
    if action not in ALLOWED_ACTIONS:
        raise InvalidRequest(f"{action} commands are not created through this API")
    need = Role.SUPERVISOR if action in SUPERVISOR_ACTIONS else Role.OPERATOR
    if not user.role.at_least(need):
        return _refuse(
            conn,
            user,
            now,
            Refusal(
                "role", f"{action} needs the {need} role; {user.name} is a {user.role}", "forbidden"
            ),
            base,
        )
    clean = params.validate(action, request.params)
    valid_for = request.valid_for or settings.valid_for
    if not 30 <= valid_for <= settings.max_valid_for:
        raise InvalidRequest(f"valid_for must be 30…{settings.max_valid_for} seconds")
    targets = resolve_targets(conn, request, now, settings.max_meters)
    areas = sorted({t.area or "" for t in targets})
    detail = {**base, "meters": len(targets), "areas": areas}
    outside = [a for a in areas if not user.sees(a or None)]
    if outside:
        return _refuse(
            conn,
            user,
            now,
            Refusal("scope", f"{user.name} may not command meters of areas {outside}", "forbidden"),
            detail,
        )
    if action is CommandAction.TIME_SYNC:  # ESAM meters: the head-end seals the clock set
        clock = clockset.refusal(
            conn, (t.meter for t in targets), now, meter_zone(), settings.clock_set
        )
        if clock is not None:
            return _refuse(conn, user, now, Refusal(clock.rule, clock.message), detail)
    state = guard_store.load_state(conn, now.astimezone(guards.zone).date())
    counts = guard_store.recent_counts(conn, now)
    earlier = 0
    if action in DISCONNECTS:
        _serialise_operator(conn, user.name)
        earlier = guard_store.operator_unapproved(
            conn, user.name, now, guards.supervisor_window_minutes
        )
    decision = evaluate(action, targets, now, guards, state, counts, operator_recent=earlier)
    if decision.refused:
        assert decision.rule
        return _refuse(conn, user, now, Refusal(decision.rule, decision.message), detail)
    waiting = decision.outcome == "needs_approval"
    command_id = _new_id(now)
    conn.execute(
        commands.insert().values(
            id=command_id,
            action=action.value,
            params=clean,
            state=(State.AWAITING_APPROVAL if waiting else State.APPROVED).value,
            note=request.note,
            areas=areas,
            meter_count=len(targets),
            created_by=user.name,
            created_at=now,
            valid_until=now + timedelta(seconds=valid_for),
            approval_rule=decision.rule if waiting else None,
            approved_at=None if waiting else now,
        )
    )
    by_gateway: dict[str, list[MeterFacts]] = defaultdict(list)
    for t in targets:
        by_gateway[t.gateway].append(t)
    for n, (gateway, metered) in enumerate(sorted(by_gateway.items()), start=1):
        dispatch_id = f"{command_id}.{n}"
        conn.execute(
            command_dispatches.insert().values(
                id=dispatch_id,
                command_id=command_id,
                gateway=gateway,
                state=(State.AWAITING_APPROVAL if waiting else State.APPROVED).value,
                nonce=secrets.token_hex(16),
            )
        )
        conn.execute(
            command_targets.insert(),
            [
                {
                    "command_id": command_id,
                    "meter": t.meter,
                    "gateway": gateway,
                    "area": t.area,
                    "dispatch_id": dispatch_id,
                    "state": State.CREATED.value,
                }
                for t in metered
            ],
        )
    audit.append(
        conn,
        user.name,
        "command.create",
        command_id,
        {
            **detail,
            "params": clean,
            "gateways": sorted(by_gateway),
            "state": State.AWAITING_APPROVAL if waiting else State.APPROVED,
            "approval": decision.message if waiting else None,
            "note": request.note,
        },
        at=now,
    )
    return command_id


def _row(conn: Connection, command_id: str) -> Any:
    row = conn.execute(select(commands).where(commands.c.id == command_id)).one_or_none()
    if row is None:
        raise NotFound(f"no command {command_id!r}")
    return row


def _set_state(
    conn: Connection, command_id: str, state: State, only_from: frozenset[State], **values: Any
) -> bool:
    done = conn.execute(
        update(commands)
        .where(commands.c.id == command_id, commands.c.state.in_([s.value for s in only_from]))
        .values(state=state.value, **values)
    )
    return bool(done.rowcount)


def approve(
    conn: Connection, user: User, command_id: str, *, now: datetime, guards: GuardSettings
) -> Refusal | None:
    """Approve a command awaiting approval (None), or the ``Refusal`` (audited either way)."""
    row = _row(conn, command_id)
    base = {"action": row.action, "meters": row.meter_count, "areas": row.areas}

    def refuse(rule: str, message: str, kind: Literal["forbidden", "conflict"]) -> Refusal:
        return _refuse(conn, user, now, Refusal(rule, message, kind, command_id), base)

    if not user.role.at_least(Role.SUPERVISOR):
        return refuse(
            "role",
            f"approving needs the supervisor role; {user.name} is a {user.role}",
            "forbidden",
        )
    outside = [a for a in row.areas if not user.sees(a or None)]
    if outside:
        return refuse(
            "scope", f"{user.name} may not approve commands for areas {outside}", "forbidden"
        )
    if row.state != State.AWAITING_APPROVAL:
        return refuse(
            "state", f"command {command_id} is {row.state}, not awaiting approval", "conflict"
        )
    if row.created_by == user.name:
        return refuse(
            "second_user",
            "the approval must come from a second user, not the one who created the command",
            "forbidden",
        )
    targets = [
        MeterFacts(t.meter, t.gateway, t.area, False)
        for t in conn.execute(
            select(command_targets).where(command_targets.c.command_id == command_id)
        )
    ]
    # Facts as the archive says now: a meter may have become keep-power since the request.
    current = directory.meter_facts(conn, [t.meter for t in targets], now)
    targets = [current.get(t.meter, t) for t in targets]
    state = guard_store.load_state(conn, now.astimezone(guards.zone).date())
    counts = guard_store.recent_counts(conn, now, exclude_command=command_id)
    decision = evaluate(
        CommandAction(row.action), targets, now, guards, state, counts, supervisor_approved=True
    )
    if decision.refused:
        assert decision.rule
        return refuse(decision.rule, decision.message, "conflict")
    if now >= row.valid_until:
        return refuse("expired", f"command {command_id} expired at {row.valid_until}", "conflict")
    _set_state(
        conn,
        command_id,
        State.APPROVED,
        frozenset({State.AWAITING_APPROVAL}),
        approved_by=user.name,
        approved_at=now,
    )
    conn.execute(
        update(command_dispatches)
        .where(command_dispatches.c.command_id == command_id)
        .values(state=State.APPROVED.value)
    )
    audit.append(conn, user.name, "command.approve", command_id, base, at=now)
    return None


def cancel(
    conn: Connection, user: User, command_id: str, *, now: datetime, reason: str | None = None
) -> Refusal | None:
    """Cancel a command not yet sent (None), or the ``Refusal`` (audited either way)."""
    row = _row(conn, command_id)
    base = {"action": row.action, "meters": row.meter_count, "areas": row.areas}

    def refuse(rule: str, message: str, kind: Literal["forbidden", "conflict"]) -> Refusal:
        return _refuse(conn, user, now, Refusal(rule, message, kind, command_id), base)

    if not user.role.at_least(Role.OPERATOR):
        return refuse(
            "role", f"cancelling needs the operator role; {user.name} is a {user.role}", "forbidden"
        )
    outside = [a for a in row.areas if not user.sees(a or None)]
    if outside:
        return refuse(
            "scope", f"{user.name} may not cancel commands for areas {outside}", "forbidden"
        )
    in_flight = conn.execute(
        select(command_dispatches.c.id).where(
            command_dispatches.c.command_id == command_id,
            command_dispatches.c.state.notin_(
                [State.APPROVED.value, State.AWAITING_APPROVAL.value]
            ),
        )
    ).first()
    if row.state not in CANCELLABLE or in_flight is not None:
        return refuse(
            "state",
            f"command {command_id} is {row.state}: only commands not yet sent can be cancelled",
            "conflict",
        )
    why = reason or f"cancelled by {user.name}"
    _set_state(
        conn,
        command_id,
        State.CANCELLED,
        CANCELLABLE,
        cancelled_by=user.name,
        cancelled_at=now,
        finished_at=now,
        reason=why,
    )
    conn.execute(
        update(command_dispatches)
        .where(command_dispatches.c.command_id == command_id)
        .values(state=State.CANCELLED.value, finished_at=now, reason=why)
    )
    conn.execute(
        update(command_targets)
        .where(command_targets.c.command_id == command_id)
        .values(state=State.CANCELLED.value, at=now, reason=why)
    )
    audit.append(conn, user.name, "command.cancel", command_id, {**base, "reason": why}, at=now)
    return None
