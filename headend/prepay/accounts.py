"""Accounts and their metering points in the database: opening, linking a point (with its tariff
and split), unlinking, and the links the charge job reads.  Changes are audited.
``headend.prepay.store`` re-exports these (its callers are unchanged)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, or_, select, update

from headend import audit
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.prepay_tables import (
    prepay_account_points,
    prepay_accounts,
)
from headend.db.tables import meters
from headend.prepay.money import to_micro
from headend.prepay.tariffs import parse_split

MODES = ("prepaid", "postpaid")


def create_account(
    conn: Connection,
    account: str,
    *,
    mode: str,
    name: str = "",
    language: str = "zh",
    contacts: Sequence[str] = (),
    overdraft: Decimal = Decimal(0),
    area: str | None = None,
    customer_class: str = "residential",
    tier_extra: Decimal = Decimal(0),
    actor: str,
    now: datetime,
) -> None:
    """Open an account; ``Conflict`` if the id is taken."""
    if mode not in MODES:
        raise InvalidRequest(f"mode: use one of {MODES}")
    if overdraft < 0:
        raise InvalidRequest("overdraft: the allowed overdraft is zero or positive")
    if tier_extra < 0:
        raise InvalidRequest("tier_extra: the extra tier allowance is zero or positive")
    found = conn.execute(
        select(prepay_accounts.c.id).where(prepay_accounts.c.id == account)
    ).first()
    if found is not None:
        raise Conflict(f"account {account!r} already exists")
    conn.execute(
        prepay_accounts.insert().values(
            id=account,
            name=name,
            mode=mode,
            area=area,
            language=language,
            contacts=list(contacts),
            overdraft_micro=to_micro(overdraft),
            created_by=actor,
            created_at=now,
            stage="ok",
            cycle=0,
            supply="on",
            customer_class=customer_class,
            tier_extra=str(tier_extra),
        )
    )
    audit.append(
        conn,
        actor,
        "prepay.account_create",
        account,
        {
            "mode": mode,
            "area": area,
            "overdraft": str(overdraft),
            "contacts": len(contacts),
            "class": customer_class,
        },
        at=now,
    )


def account(conn: Connection, account_id: str) -> Any:
    """The account row; ``NotFound`` if there is none."""
    row = conn.execute(
        select(prepay_accounts).where(prepay_accounts.c.id == account_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id!r} does not exist")
    return row


def link_point(
    conn: Connection,
    account_id: str,
    point: str,
    valid_from: datetime,
    *,
    tariff: str | None = None,
    split: dict[str, Any] | None = None,
    actor: str,
    now: datetime,
) -> None:
    """Charge ``point``'s energy from ``valid_from`` on to the account (one account at a time)."""
    acct = account(conn, account_id)
    meter = conn.execute(
        select(meters.c.area, meters.c.tariff_category)
        .where(meters.c.point == point)
        .order_by(meters.c.valid_from.desc())
    ).first()
    if meter is None:
        raise NotFound(f"metering point {point!r} is not in the meter archive")
    parsed_split = parse_split(split)
    if tariff is None and not meter.tariff_category:
        raise InvalidRequest(f"point {point!r}: its meter has no tariff_category; name the tariff")
    pp = prepay_account_points
    clash = conn.execute(
        select(pp.c.account).where(
            pp.c.point == point, or_(pp.c.valid_to.is_(None), pp.c.valid_to > valid_from)
        )
    ).first()
    if clash is not None:
        raise Conflict(f"point {point!r} is already charged to account {clash.account!r}")
    conn.execute(
        pp.insert().values(
            account=account_id,
            point=point,
            valid_from=valid_from,
            tariff=tariff,
            split=None if parsed_split is None else parsed_split.model_dump(mode="json"),
        )
    )
    if acct.area is None:
        conn.execute(
            update(prepay_accounts)
            .where(prepay_accounts.c.id == account_id)
            .values(area=meter.area)
        )
    audit.append(
        conn,
        actor,
        "prepay.point_link",
        account_id,
        {"point": point, "valid_from": valid_from.isoformat(), "tariff": tariff, "split": split},
        at=now,
    )


def unlink_point(
    conn: Connection, account_id: str, point: str, at: datetime, *, actor: str, now: datetime
) -> None:
    """Stop charging ``point`` to the account from ``at``."""
    pp = prepay_account_points
    done = conn.execute(
        update(pp)
        .where(
            pp.c.account == account_id,
            pp.c.point == point,
            pp.c.valid_to.is_(None),
            pp.c.valid_from < at,
        )
        .values(valid_to=at)
    )
    if not done.rowcount:
        raise NotFound(f"point {point!r} is not linked to account {account_id!r} before {at}")
    audit.append(
        conn,
        actor,
        "prepay.point_unlink",
        account_id,
        {"point": point, "at": at.isoformat()},
        at=now,
    )


def points(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    """The account's metering points, every link period."""
    pp = prepay_account_points
    rows = conn.execute(
        select(pp).where(pp.c.account == account_id).order_by(pp.c.valid_from, pp.c.point)
    ).all()
    return [dict(r._mapping) for r in rows]


def point_links(conn: Connection) -> list[Any]:
    """Every link of a point to an account (for the charge job)."""
    pp = prepay_account_points
    return list(conn.execute(select(pp).order_by(pp.c.point, pp.c.valid_from)).all())
