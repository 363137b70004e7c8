"""Tariffs and the ledger in the database, and (re-exported from ``headend.prepay.accounts``)
accounts and their metering points.

Every balance change is a ledger row (``prepay_ledger``); the balance is ``SUM(amount_micro)``.
Ledger rows are never updated or deleted: a wrong charge is corrected by a reversal, a wrong period
by an adjustment (退补) naming the period and the reason.  A ledger row is unique per
``(kind, reference)``: a charge's reference is its charge id, a top-up's the payment's external
reference, so repeating a request never moves money twice.  Changes are audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from headend import audit
from headend.db.dialect import insert_ignore
from headend.db.errors import Conflict, InvalidRequest
from headend.db.prepay_tables import (
    prepay_ledger,
    prepay_tariffs,
)
from headend.prepay.accounts import (  # re-exported: callers use store.*
    MODES,
    account,
    create_account,
    link_point,
    point_links,
    points,
    unlink_point,
)
from headend.prepay.money import (
    MoneySettings,
    amount_row,
    check_balance,
    from_micro,
    payment,
    to_micro,
)
from headend.prepay.tariffs import TariffBook, TariffVersion, parse_definition

LEDGER_KINDS = (
    "charge",
    "reversal",
    "topup",
    "adjustment",
    "fee",
    "late_fee",  # 电费违约金 (headend.prepay.latefees)
    "payment_reversal",  # 冲正 of a top-up (headend.prepay.payments)
    "tier_trueup",  # tiers per account per period (headend.prepay.tiers)
    "estimate",  # an open gap's estimated consumption (headend.prepay.estimates)
    "estimate_trueup",  # an estimate replaced by the actual reading's charge
)


# --- tariffs ----------------------------------------------------------------------------------


def put_tariff(
    conn: Connection,
    tariff: str,
    definition: dict[str, Any],
    valid_from: datetime,
    *,
    name: str = "",
    actor: str,
    now: datetime,
) -> None:
    """Add a version of ``tariff`` in force from ``valid_from`` (the first may be back-dated)."""
    parsed = parse_definition(definition)
    latest = conn.execute(
        select(func.max(prepay_tariffs.c.valid_from)).where(prepay_tariffs.c.id == tariff)
    ).scalar_one()
    if latest is not None:
        if valid_from <= latest:
            raise Conflict(
                f"tariff {tariff!r} has a version from {latest.isoformat()}; a new version must "
                "start later (history is not rewritten: correct past periods with adjustments)"
            )
        if valid_from < now:
            raise Conflict(
                f"a change of tariff {tariff!r} applies from its effective date only, which must "
                f"not be in the past ({valid_from.isoformat()} < {now.isoformat()})"
            )
    conn.execute(
        prepay_tariffs.insert().values(
            id=tariff,
            name=name,
            valid_from=valid_from,
            definition=parsed.model_dump(mode="json"),
            created_by=actor,
            created_at=now,
        )
    )
    audit.append(
        conn,
        actor,
        "prepay.tariff",
        tariff,
        {"valid_from": valid_from.isoformat(), "definition": parsed.model_dump(mode="json")},
        at=now,
    )


def tariff_book(conn: Connection) -> TariffBook:
    """Every version of every tariff."""
    rows = conn.execute(select(prepay_tariffs)).all()
    return TariffBook(
        TariffVersion(r.id, r.valid_from, parse_definition(r.definition)) for r in rows
    )


def tariffs(conn: Connection) -> list[dict[str, Any]]:
    """Every tariff version, by id then effective date."""
    rows = conn.execute(
        select(prepay_tariffs).order_by(prepay_tariffs.c.id, prepay_tariffs.c.valid_from)
    ).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "valid_from": r.valid_from,
            "definition": r.definition,
            "created_by": r.created_by,
        }
        for r in rows
    ]


# --- the ledger -------------------------------------------------------------------------------


def post(
    conn: Connection,
    account_id: str,
    kind: str,
    amount_micro: int,
    at: datetime,
    reference: str,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> int | None:
    """Append a ledger row; None when ``(kind, reference)`` is already there (nothing moves)."""
    if kind not in LEDGER_KINDS:
        raise InvalidRequest(f"ledger kind: use one of {LEDGER_KINDS}")
    done = conn.execute(
        insert_ignore(conn, prepay_ledger)
        .values(
            account=account_id,
            kind=kind,
            amount_micro=amount_micro,
            at=at,
            reference=reference,
            reason=reason,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            created_by=actor,
            created_at=now,
        )
        .returning(prepay_ledger.c.id)
    ).first()
    return None if done is None else int(done.id)


def balance_micro(conn: Connection, account_id: str) -> int:
    """The account's balance: the sum of its ledger, in micro-units."""
    total = conn.execute(
        select(func.coalesce(func.sum(prepay_ledger.c.amount_micro), 0)).where(
            prepay_ledger.c.account == account_id
        )
    ).scalar_one()
    return int(total)


def balances(conn: Connection) -> dict[str, int]:
    """Every account's balance in micro-units."""
    rows = conn.execute(
        select(prepay_ledger.c.account, func.sum(prepay_ledger.c.amount_micro)).group_by(
            prepay_ledger.c.account
        )
    ).all()
    return {a: int(s) for a, s in rows}


def ledger(
    conn: Connection,
    account_id: str,
    *,
    after: int = 0,
    limit: int = 500,
    kinds: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows of the account after id ``after`` (of ``kinds`` if given), oldest first,
    amounts as exact text."""
    query = select(prepay_ledger).where(
        prepay_ledger.c.account == account_id, prepay_ledger.c.id > after
    )
    if kinds:
        query = query.where(prepay_ledger.c.kind.in_(list(kinds)))
    rows = conn.execute(query.order_by(prepay_ledger.c.id).limit(limit)).all()
    return [amount_row(r._mapping) for r in rows]


def adjust(
    conn: Connection,
    account_id: str,
    amount: Decimal,
    *,
    kind: str,
    reference: str,
    reason: str,
    period: tuple[datetime, datetime] | None,
    money: MoneySettings,
    actor: str,
    now: datetime,
) -> int:
    """An adjustment (退补, signed, naming the corrected period) or a fee (a debit)."""
    acct = account(conn, account_id)
    if kind not in ("adjustment", "fee"):
        raise InvalidRequest("kind: adjustment or fee")
    value = payment(amount, money, "amount")
    if kind == "fee" and value <= 0:
        raise InvalidRequest("a fee is a positive amount (it is debited)")
    if kind == "adjustment" and period is None:
        raise InvalidRequest("an adjustment names the period it corrects")
    if not reason.strip():
        raise InvalidRequest("give the reason")
    micro = to_micro(-value if kind == "fee" else value)
    check_balance(balance_micro(conn, acct.id) + micro)
    posted = post(
        conn,
        acct.id,
        kind,
        micro,
        now,
        reference,
        actor=actor,
        now=now,
        reason=reason,
        period=period,
    )
    if posted is None:
        raise Conflict(f"a {kind} with reference {reference!r} already exists")
    audit.append(
        conn,
        actor,
        f"prepay.{kind}",
        account_id,
        {
            "amount": str(from_micro(micro)),
            "reference": reference,
            "reason": reason,
            "period": [p.isoformat() for p in period] if period else None,
        },
        at=now,
    )
    return posted


__all__ = [
    "LEDGER_KINDS",
    "MODES",
    "account",
    "adjust",
    "balance_micro",
    "balances",
    "create_account",
    "ledger",
    "link_point",
    "point_links",
    "points",
    "post",
    "put_tariff",
    "tariff_book",
    "tariffs",
    "unlink_point",
]
