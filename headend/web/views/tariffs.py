"""What the account page shows of the tariffs: each linked point's tariff now, summarised.

A point's tariff is its link's own (``prepay_account_points.tariff``) or, without one, its meter's
``tariff_category`` in the archive, as the charge job resolves it (``headend.prepay.charging``);
the definition is the version in force (``headend.prepay.tariffs.TariffBook``).  Read-only; the
scope check is the caller's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from headend.db.tables import meters
from headend.prepay import store
from headend.prepay.errors import TariffError
from headend.prepay.tariffs import (
    SLOTS,
    Definition,
    FlatTariff,
    TieredTariff,
    TouTariff,
    TouTieredTariff,
    parse_split,
)


def _hhmm(value: Any) -> str:
    return f"{value:%H:%M}"


def describe(definition: Definition) -> dict[str, Any]:
    """A definition as the page shows it: kind, prices per slot, periods, steps."""
    out: dict[str, Any] = {"kind": definition.kind}
    if isinstance(definition, FlatTariff):
        out["price"] = str(definition.price)
    if isinstance(definition, TouTariff):  # TouTieredTariff too
        out["prices"] = [(SLOTS[k], str(v)) for k, v in sorted(definition.prices.items())]
        out["periods"] = [(_hhmm(p.start), _hhmm(p.end), SLOTS[p.slot]) for p in definition.periods]
        out["seasons"] = len(definition.seasons)
        out["holidays"] = len(definition.holidays)
    if isinstance(definition, TieredTariff | TouTieredTariff):
        out["period"] = definition.period
        out["steps"] = [
            (None if s.upto is None else str(s.upto), str(s.price)) for s in definition.steps
        ]
    return out


def _category(conn: Connection, point: str, at: datetime) -> str | None:
    """The ``tariff_category`` of the meter at ``point`` at ``at`` (the archive's latest)."""
    m = meters.c
    found: str | None = conn.execute(
        select(m.tariff_category)
        .where(m.point == point, m.valid_from <= at)
        .order_by(m.valid_from.desc())
        .limit(1)
    ).scalar()
    return found


def point_tariffs(
    conn: Connection, links: list[dict[str, Any]], at: datetime
) -> list[dict[str, Any]]:
    """Per link in force at ``at``: the point, its tariff (id, name, where it came from), the
    version in force and its summary (``describe``), or ``problem`` (no tariff / no version)."""
    book = store.tariff_book(conn)
    names = {r["id"]: r["name"] for r in store.tariffs(conn)}
    out: list[dict[str, Any]] = []
    for link in links:
        if link["valid_from"] > at or (link["valid_to"] is not None and link["valid_to"] <= at):
            continue
        tariff, source = link["tariff"], "link"
        if not tariff:
            tariff, source = _category(conn, link["point"], at), "archive"
        split = parse_split(link.get("split"))
        row: dict[str, Any] = {
            "point": link["point"],
            "tariff": tariff or "",
            "name": names.get(tariff or "", ""),
            "source": source,
            "split": [
                (p.tariff, str(p.ratio if p.ratio is not None else p.quantity))
                for p in (split.parts if split else ())
            ],
            "split_kind": split.kind if split else None,
            "problem": None,
            "valid_from": None,
            **dict.fromkeys(("kind", "price", "prices", "periods", "period", "steps")),
            "seasons": 0,
            "holidays": 0,
        }
        if not tariff:
            row["problem"] = "none"
        else:
            try:
                version = book.at(tariff, at)
            except TariffError:
                row["problem"] = "no_version"
            else:
                row["valid_from"] = version.valid_from
                row.update(describe(version.definition))
        out.append(row)
    return out
