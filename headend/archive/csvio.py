"""Meters as CSV: export the archive in force, import a file as creations and changes.

Columns (header row required, order free): ``protocols.archive.COLUMNS`` (``id, point, area,
bus, protocol, address, model, multiplier, role, customer, tariff_category, keep_power, pv,
esam``; the flags ``keep_power``, ``pv``, ``esam``: true/false/1/0/yes/no, left out: false).
An import is all-or-nothing: every line is validated first and any error rejects the whole file
with the line numbers; a valid file creates new meters and versions changed ones (unchanged rows
are left alone), audited one by one.  Text cells that a spreadsheet would run as a formula are
exported with a ``'`` in front and imported without it (``headend.csvcells``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from headend import csvcells
from headend.archive import service
from headend.archive.effective import in_force
from headend.archive.models import MeterIn, MeterPatch
from headend.db.errors import HeadendError, InvalidRequest
from headend.db.tables import meters
from protocols.archive import COLUMNS, FLAGS, REQUIRED

TRUE, FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n", ""}
MAX_ROWS = 100_000


@dataclass
class ImportReport:
    """What an import did."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0


def export_meters(conn: Connection, at: datetime | None = None, area: str | None = None) -> str:
    """The meters in force at ``at`` (default: now) as CSV text."""
    query = select(*[meters.c[c] for c in COLUMNS]).where(in_force(meters, at))
    if area is not None:
        query = query.where(meters.c.area == area)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in conn.execute(query.order_by(meters.c.id)):
        writer.writerow(
            csvcells.row(
                "true" if v is True else "false" if v is False else ("" if v is None else v)
                for v in row
            )
        )
    return out.getvalue()


def _parse(text: str) -> list[tuple[int, MeterIn]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        raise InvalidRequest(
            f"CSV header: missing columns {missing}, unknown columns {unknown}; "
            f"expected {', '.join(COLUMNS)}"
        )
    rows: list[tuple[int, MeterIn]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise InvalidRequest(f"more than {MAX_ROWS} rows: split the file")
        data: dict[str, Any] = {
            k: csvcells.unescape((v or "").strip()) for k, v in raw.items() if k is not None
        }
        if None in raw:
            errors.append(f"line {line}: more fields than columns")
            continue
        bad = next((f for f in FLAGS if str(data.get(f, "")).lower() not in TRUE | FALSE), None)
        if bad is not None:
            value = str(data[bad]).lower()
            errors.append(f"line {line}: {bad} must be true or false, got {value!r}")
            continue
        data.update({f: str(data.get(f, "")).lower() in TRUE for f in FLAGS})
        for optional in ("point", "model"):
            if not data.get(optional):
                data.pop(optional, None)
        for defaulted in ("protocol", "multiplier", "role"):
            if not data.get(defaulted):
                data.pop(defaulted, None)
        try:
            meter = MeterIn(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            errors.append(f"line {line}: {where}: {first['msg']}")
            continue
        if meter.id in seen:
            errors.append(f"line {line}: meter {meter.id} is also on line {seen[meter.id]}")
            continue
        seen[meter.id] = line
        rows.append((line, meter))
    if errors:
        raise InvalidRequest("CSV rejected, nothing imported:\n" + "\n".join(errors[:50]))
    return rows


def import_meters(conn: Connection, text: str, actor: str, at: datetime) -> ImportReport:
    """Apply a CSV file in ``conn``'s transaction (the caller rolls back on error)."""
    report = ImportReport()
    for line, meter in _parse(text):
        current = conn.execute(
            select(meters).where(meters.c.id == meter.id, meters.c.valid_to.is_(None))
        ).first()
        try:
            if current is None:
                service.create_meter(conn, meter, actor, at)
                report.created.append(meter.id)
                continue
            wanted = service._meter_values(meter)
            changes = {k: v for k, v in wanted.items() if k != "id" and current._mapping[k] != v}
            if not changes:
                report.unchanged += 1
                continue
            service.update_meter(conn, meter.id, MeterPatch(**changes), actor, at)
            report.updated.append(meter.id)
        except HeadendError as exc:
            raise type(exc)(f"CSV line {line} ({meter.id}): {exc}; nothing imported") from None
    return report
