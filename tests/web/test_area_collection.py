"""The area page shows collection per quantity for a day: collected / unavailable (with the
reason) / missing per quantity, and the (meter, quantity) pairs not collected (issue 17).

A2 yesterday: every meter's energy arrived (the seeded daily freezes); voltage arrived from
m00 and m01, m02 refused it (the gateway said so), m03 said so and then answered again (so it is
missing), m04 and the area total meter are missing.  A1's refusal must not show on A2's page.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, update

from headend.db import writing
from headend.db.ops_tables import users
from headend.db.tables import events, readings
from tests.headend.ops_support import add_user
from tests.web.conftest import Web
from tests.web.support import ENERGY, SHANGHAI, found, sign_in

VOLTAGE = "voltage.a"


def _at(web: Web, days_ago: int, hour: int) -> datetime:
    day = web.today - timedelta(days=days_ago)
    return datetime.combine(day, time(hour), tzinfo=SHANGHAI)


def _said(web: Web, meter: str, kind: str, when: datetime, reason: str = "refused") -> None:
    details = {"identifier": "02010100", "reason": reason, "quantities": [VOLTAGE]}
    with writing(web.engine) as conn:
        conn.execute(
            insert(events).values(
                key=f"{meter}-{kind}-{when.isoformat()}", gateway="gw2", meter=meter, type=kind,
                time=when, detected=when, details=json.dumps(details), received=when,
            )
        )  # fmt: skip


def _seed(web: Web) -> None:
    with writing(web.engine) as conn:  # English labels (the Chinese ones: test_chinese_labels)
        conn.execute(update(users).where(users.c.name.in_(["vic", "vera"])).values(language="en"))
    rows: list[dict[str, Any]] = []
    for meter in ("A2-m00", "A2-m01"):
        t = _at(web, 1, 12)
        rows.append(
            {
                "meter": meter, "quantity": VOLTAGE, "time": t, "kind": "interval",
                "value": "229.8", "gateway": "gw2", "gateway_time": t, "flags": "",
            }
        )  # fmt: skip
    with writing(web.engine) as conn:
        conn.execute(insert(readings), rows)
    _said(web, "A2-m02", "quantity_unavailable", _at(web, 1, 1))
    _said(web, "A2-m03", "quantity_unavailable", _at(web, 1, 1), reason="undecodable")
    _said(web, "A2-m03", "quantity_available", _at(web, 1, 2))
    _said(web, "A1-m00", "quantity_unavailable", _at(web, 1, 1), reason="unsupported")


def _cells(page: str, quantity: str) -> tuple[str, str, str, str]:
    row = found(rf'id="coll-{re.escape(quantity)}">(.*?)</tr>', page)
    return (
        found(r"data-collected>(\d+)<", row),
        found(r"data-unavailable>(\d+)", row),
        found(r"data-missing>(\d+)<", row),
        row,
    )


def test_the_area_page_counts_each_quantity_and_lists_what_was_not_collected(web: Web) -> None:
    _seed(web)
    page = sign_in(web.app, "vera").get("/areas/A2")  # A2's viewer; default: yesterday
    assert page.status_code == 200
    html = page.text
    yesterday = str(web.today - timedelta(days=1))
    assert yesterday in found(r'id="coll-h">(.*?)</h2>', html)
    collected, unavailable, missing, row = _cells(html, VOLTAGE)
    assert (collected, unavailable, missing) == ("2", "1", "3")
    assert re.search(r"\brefused 1\b", row) and "33.3" in row  # 2 of 6 due
    collected, unavailable, missing, row = _cells(html, ENERGY)
    assert (collected, unavailable, missing) == ("6", "0", "0") and "100" in row
    lost = found(r'<table id="coll-lost">(.*?)</table>', html)
    pairs = re.findall(r'data-meter="([^"]+)" data-quantity="([^"]+)" data-state="(\w+)"', lost)
    assert pairs == [
        ("A2-m02", VOLTAGE, "unavailable"),  # unavailable first, with its reason
        ("A2-T", VOLTAGE, "missing"),
        ("A2-m03", VOLTAGE, "missing"),  # it answered again: no reason stands
        ("A2-m04", VOLTAGE, "missing"),
    ]
    assert 'href="/meters/A2-m02"' in lost and "refused" in lost
    assert "A1-m00" not in html and "unsupported" not in lost


def test_another_day_and_a_bad_day(web: Web) -> None:
    _seed(web)
    client = sign_in(web.app, "vic")
    before = str(web.today - timedelta(days=2))
    html = client.get(f"/areas/A2?day={before}").text
    assert before in found(r'id="coll-h">(.*?)</h2>', html)
    assert f'id="coll-{VOLTAGE}"' not in html  # no voltage due then: nothing arrived, no report
    assert _cells(html, ENERGY)[:3] == ("6", "0", "0")
    assert 'id="coll-lost"' not in html
    assert 'id="coll-next"' in html and 'id="coll-prev"' in html
    bad = client.get("/areas/A2?day=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    for far in ("0001-01-01", "9999-12-31"):  # before: 0001-01-01 overflowed into a 500
        assert client.get(f"/areas/A2?day={far}").status_code == 400


def test_scoped_users_see_only_their_areas_collection(web: Web) -> None:
    _seed(web)
    add_user(web.engine, "bea", "viewer", ["B1"])
    assert sign_in(web.app, "bea").get("/areas/A2").status_code == 403
    assert sign_in(web.app, "vera").get("/areas/A1").status_code == 403
    a1 = sign_in(web.app, "vic").get("/areas/A1").text  # fleet-wide viewer
    row = _cells(a1, VOLTAGE)[3]
    assert "unsupported 1" in row
    assert 'data-meter="A1-m00" data-quantity="voltage.a" data-state="unavailable"' in a1


def test_chinese_labels(web: Web) -> None:
    _seed(web)
    with writing(web.engine) as conn:
        conn.execute(update(users).where(users.c.name == "vic").values(language="zh"))
    html = sign_in(web.app, "vic").get("/areas/A2").text
    assert "分数据项采集情况" in html and "电表拒绝（异常应答） 1" in html and "缺失" in html
