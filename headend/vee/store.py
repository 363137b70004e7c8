"""Validation failures and their resolutions in the database; the queue operators work through.

A failure is ``open`` until an operator ``accepted`` it (the reading is right), ``corrected`` it
(the right value given) or ``rejected`` it (the reading is dropped) — each with a reason, audited —
or until it is ``cleared``: re-validation after a later decision no longer holds the reading (an
accepted jump makes the readings after it plausible again).  A cleared row that fails again is
reopened.  Charging reads resolutions from here; disconnects wait while any is open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, func, select, update

from headend import audit
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.tables import meters
from headend.vee.rules import Failure, Resolution
from headend.vee.tables import vee_flags, vee_limits

DECISIONS = {"accept": "accepted", "correct": "corrected", "reject": "rejected"}
RESOLVED = tuple(DECISIONS.values())


def resolutions(
    conn: Connection, meter_ids: Sequence[str], since: datetime
) -> dict[str, dict[datetime, Resolution]]:
    """Operators' decisions on readings of ``meter_ids`` from ``since`` on, per meter."""
    out: dict[str, dict[datetime, Resolution]] = defaultdict(dict)
    if not meter_ids:
        return out
    f = vee_flags.c
    rows = conn.execute(
        select(f.meter, f.time, f.state, f.corrected_value)
        .where(f.meter.in_(list(meter_ids)), f.time >= since, f.state.in_(RESOLVED))
        .order_by(f.resolved_at)
    )
    for r in rows:
        value = Decimal(r.corrected_value) if r.corrected_value is not None else None
        out[r.meter][r.time] = Resolution(r.state, value)
    return out


def open_times(conn: Connection, meter_ids: Sequence[str], since: datetime) -> set[tuple[str, Any]]:
    """(meter, time) of readings from ``since`` on that an open failure holds."""
    if not meter_ids:
        return set()
    f = vee_flags.c
    rows = conn.execute(
        select(f.meter, f.time).where(
            f.meter.in_(list(meter_ids)), f.time >= since, f.state == "open"
        )
    )
    return {(r.meter, r.time) for r in rows}


def record(
    conn: Connection,
    point: str,
    meter: str,
    failures: Iterable[Failure],
    window: tuple[datetime, datetime],
    now: datetime,
) -> int:
    """Store this validation's failures of ``meter`` and clear the open ones in ``window``
    (exclusive start, inclusive end) that no longer fail; how many failures are new."""
    f = vee_flags.c
    found = {(x.time, x.rule): x for x in failures}
    existing = {
        (r.time, r.rule): r
        for r in conn.execute(
            select(vee_flags).where(f.meter == meter, f.time > window[0], f.time <= window[1])
        )
    }
    new = 0
    for key, x in found.items():
        row = existing.get(key)
        if row is None:
            conn.execute(
                vee_flags.insert().values(
                    meter=meter,
                    point=point,
                    time=x.time,
                    value=str(x.value),
                    rule=x.rule,
                    detail=x.detail,
                    previous_time=x.previous_time,
                    previous_value=None if x.previous_value is None else str(x.previous_value),
                    state="open",
                    created_at=now,
                )
            )
            new += 1
        elif row.state == "cleared":
            conn.execute(
                update(vee_flags)
                .where(f.id == row.id)
                .values(state="open", detail=x.detail, reason=None, resolved_at=None)
            )
    for key, row in existing.items():
        if row.state == "open" and key not in found:
            conn.execute(
                update(vee_flags)
                .where(f.id == row.id, f.state == "open")
                .values(
                    state="cleared",
                    reason="passes the rules after a later decision or reading",
                    resolved_at=now,
                )
            )
    return new


def open_count(conn: Connection, meter_ids: Sequence[str]) -> int:
    """How many failures of ``meter_ids`` wait for an operator."""
    if not meter_ids:
        return 0
    f = vee_flags.c
    return int(
        conn.execute(
            select(func.count()).where(f.meter.in_(list(meter_ids)), f.state == "open")
        ).scalar_one()
    )


def contract(conn: Connection, point: str) -> tuple[Decimal | None, Decimal | None]:
    """The point's contract capacity (kVA) and explicit maximum power (kW), primary side."""
    row = conn.execute(select(vee_limits).where(vee_limits.c.point == point)).first()
    if row is None:
        return None, None
    return (
        Decimal(row.contract_kva) if row.contract_kva is not None else None,
        Decimal(row.max_kw) if row.max_kw is not None else None,
    )


def set_contract(
    conn: Connection,
    point: str,
    *,
    contract_kva: Decimal | None,
    max_kw: Decimal | None,
    actor: str,
    now: datetime,
) -> None:
    """Record a point's contract capacity and/or maximum power (audited)."""
    known = conn.execute(select(meters.c.id).where(meters.c.point == point)).first()
    if known is None:
        raise NotFound(f"metering point {point!r} is not in the meter archive")
    for name, v in (("contract_kva", contract_kva), ("max_kw", max_kw)):
        if v is not None and not (0 < v < 10**7):
            raise InvalidRequest(f"{name}: a positive number below 10^7")
    values = {
        "contract_kva": None if contract_kva is None else str(contract_kva),
        "max_kw": None if max_kw is None else str(max_kw),
        "set_by": actor,
        "set_at": now,
    }
    done = conn.execute(update(vee_limits).where(vee_limits.c.point == point).values(**values))
    if not done.rowcount:
        conn.execute(vee_limits.insert().values(point=point, **values))
    audit.append(
        conn,
        actor,
        "vee.limits",
        point,
        {k: values[k] for k in ("contract_kva", "max_kw")},
        at=now,
    )


def flag(conn: Connection, flag_id: int) -> Any:
    """One failure row; ``NotFound`` if there is none."""
    row = conn.execute(select(vee_flags).where(vee_flags.c.id == flag_id)).first()
    if row is None:
        raise NotFound(f"no validation failure {flag_id}")
    return row


def resolve(
    conn: Connection,
    flag_id: int,
    decision: str,
    *,
    reason: str,
    value: str | None = None,
    actor: str,
    now: datetime,
) -> Any:
    """Accept, correct (with the right register value) or reject an open failure (audited)."""
    if decision not in DECISIONS:
        raise InvalidRequest(f"decision: use one of {sorted(DECISIONS)}")
    if not reason.strip():
        raise InvalidRequest("reason: say why (it goes into the audit log)")
    row = flag(conn, flag_id)
    if row.state != "open":
        raise Conflict(f"validation failure {flag_id} is {row.state}, not open")
    corrected: str | None = None
    if decision == "correct":
        try:
            number = Decimal(value) if value is not None else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number < 0:
            raise InvalidRequest("value: the corrected register value, a decimal number ≥ 0")
        corrected = str(number)
    elif value is not None:
        raise InvalidRequest(f"value: only a correction carries a value, not {decision}")
    state = DECISIONS[decision]
    conn.execute(
        update(vee_flags)
        .where(vee_flags.c.id == flag_id, vee_flags.c.state == "open")
        .values(
            state=state,
            corrected_value=corrected,
            reason=reason,
            resolved_by=actor,
            resolved_at=now,
        )
    )
    audit.append(
        conn,
        actor,
        f"vee.{decision}",
        f"{row.meter}@{row.time.isoformat()}",
        {
            "flag": flag_id,
            "rule": row.rule,
            "value": row.value,
            "corrected": corrected,
            "reason": reason,
        },
        at=now,
    )
    return flag(conn, flag_id)


def queue(
    conn: Connection,
    *,
    state: str | None = "open",
    meter: str | None = None,
    areas: Iterable[str] | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Failures by id, filtered by state, meter and the meters' areas."""
    f = vee_flags.c
    query = select(vee_flags).where(f.id > after)
    if state is not None:
        query = query.where(f.state == state)
    if meter is not None:
        query = query.where(f.meter == meter)
    if areas is not None:
        query = query.where(
            f.meter.in_(select(meters.c.id).where(meters.c.area.in_(sorted(areas))))
        )
    rows = conn.execute(query.order_by(f.id).limit(limit)).all()
    return [dict(r._mapping) for r in rows]
