"""Commands as the console needs them: which guard rails apply to a request before it is sent,
and creating / approving / cancelling through ``headend.commands.service`` (the API's path).

``preview`` evaluates every guard rail separately so the confirmation can show each one's state
(the authoritative decision is still ``headend.guards.evaluate``, run again on creation, approval
and dispatch).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from headend.auth.deps import Ops
from headend.auth.roles import Role, User
from headend.commands import service, views
from headend.guards import DISCONNECTS, check_window, evaluate
from headend.guards import store as guard_store
from protocols.uplink import CommandAction

# What the meter and area pages offer (the API accepts more).
METER_ACTIONS = (
    CommandAction.READ,
    CommandAction.RELAY_TRIP,
    CommandAction.RELAY_CLOSE_ALLOWED,
    CommandAction.RELAY_CLOSE_DIRECT,
)
AREA_ACTIONS = (CommandAction.READ, CommandAction.RELAY_TRIP, CommandAction.RELAY_CLOSE_ALLOWED)


@dataclass(frozen=True)
class Rule:
    """One guard rail as it stands for a request: ``ok``, ``refuses`` or ``needs_approval``."""

    name: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class Preview:
    """A request's targets, every guard rail's state, and the decision."""

    action: CommandAction
    meters: int
    areas: list[str]
    gateways: list[str]
    guarded: bool
    outcome: str  # allow | needs_approval | refuse
    rule: str | None
    message: str
    rules: list[Rule] = field(default_factory=list)


def preview(conn: Connection, ops: Ops, user: User, request: service.CommandRequest) -> Preview:
    """Resolve the request's meters and evaluate the guard rails now (nothing is stored)."""
    now = ops.clock.now()
    user.require(Role.OPERATOR)
    targets = service.resolve_targets(conn, request, now, ops.commands.max_meters)
    user.require_areas(t.area for t in targets)
    areas = sorted({t.area or "" for t in targets})
    gateways = sorted({t.gateway for t in targets})
    state = guard_store.load_state(conn, now.astimezone(ops.guards.zone).date())
    counts = guard_store.recent_counts(conn, now)
    decision = evaluate(request.action, targets, now, ops.guards, state, counts)
    guarded = request.action in DISCONNECTS
    rules: list[Rule] = []
    if guarded:
        g = ops.guards
        rules.append(Rule("pause", "refuses" if state.paused else "ok", state.pause_reason or ""))
        kept = sorted(t.meter for t in targets if t.keep_power)
        rules.append(Rule("keep_power", "refuses" if kept else "ok", ", ".join(kept)))
        window = check_window(g, state, now)
        rules.append(
            Rule(
                window.rule or "window",
                "refuses" if window.refused else "ok",
                window.message
                or f"{g.window_start:%H:%M}-{g.window_end:%H:%M} {g.timezone}, "
                f"ISO weekdays {sorted(g.weekdays)}",
            )
        )
        per_area = Counter(t.area or "" for t in targets)
        over = [
            f"{a or '-'}: {counts.by_area.get(a, 0)} + {n} > {g.hourly_limit_area}"
            for a, n in sorted(per_area.items())
            if counts.by_area.get(a, 0) + n > g.hourly_limit_area
        ]
        rules.append(
            Rule(
                "hourly_limit.area",
                "refuses" if over else "ok",
                "; ".join(over) or f"≤ {g.hourly_limit_area} / h",
            )
        )
        fleet_total = counts.fleet + len(targets)
        rules.append(
            Rule(
                "hourly_limit.fleet",
                "refuses" if fleet_total > g.hourly_limit_fleet else "ok",
                f"{counts.fleet} + {len(targets)} / {g.hourly_limit_fleet} per hour",
            )
        )
        needs = len(targets) > g.supervisor_threshold
        rules.append(
            Rule(
                "supervisor_approval",
                "needs_approval" if needs else "ok",
                f"{len(targets)} / {g.supervisor_threshold}",
            )
        )
    return Preview(
        action=request.action,
        meters=len(targets),
        areas=areas,
        gateways=gateways,
        guarded=guarded,
        outcome=decision.outcome,
        rule=decision.rule,
        message=decision.message,
        rules=rules,
    )


def create(
    conn: Connection, ops: Ops, user: User, request: service.CommandRequest
) -> str | service.Refusal:
    """Create the command as the API does (the refusal is audited by the service)."""
    return service.create(
        conn, user, request, now=ops.clock.now(), guards=ops.guards, settings=ops.commands
    )


def decide(
    conn: Connection, ops: Ops, user: User, command_id: str, approve: bool
) -> service.Refusal | None:
    """Approve or cancel (404 outside the user's scope, like the API)."""
    views.get(conn, user, command_id)
    now = ops.clock.now()
    if approve:
        return service.approve(conn, user, command_id, now=now, guards=ops.guards)
    return service.cancel(conn, user, command_id, now=now, reason=f"cancelled by {user.name}")


def progress(view: dict[str, Any]) -> dict[str, int]:
    """How many targets are in each state (for the live status line)."""
    return dict(Counter(t["state"] for t in view.get("targets", [])))
