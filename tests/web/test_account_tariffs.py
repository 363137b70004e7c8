"""The account page shows each linked point's tariff now: id, kind, prices, periods and steps.

Before, the demo's accounts on a ``tou_tiered`` tariff showed no tariff at all (issue 23).  Each
case a billing clerk meets: the link's own tariff, the meter's tariff category when the link
names none, a split, a tariff whose first version starts later, and a link that has ended.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from headend.db import writing
from headend.db.ops_tables import users
from headend.db.prepay_tables import prepay_account_points
from headend.db.tables import meters
from headend.prepay import store
from tests.headend.ops_support import add_user
from tests.web.conftest import Web
from tests.web.support import sign_in

TOU_TIERED: dict[str, Any] = {
    "kind": "tou_tiered",
    "prices": {"1": "1.2000", "2": "0.9000", "3": "0.6000", "4": "0.3000"},
    "periods": [
        {"start": "00:00", "end": "08:00", "slot": 4},
        {"start": "08:00", "end": "18:00", "slot": 3},
        {"start": "18:00", "end": "21:00", "slot": 2},
        {"start": "21:00", "end": "00:00", "slot": 1},
    ],
    "period": "yearly",
    "steps": [
        {"upto": "2760", "price": "0"},
        {"upto": "4800", "price": "0.05"},
        {"upto": None, "price": "0.30"},
    ],
}


def _linked(web: Web) -> None:
    now = web.now
    old = now - timedelta(days=30)
    with writing(web.engine) as conn:
        store.put_tariff(conn, "RES-TT", TOU_TIERED, old, name="Residential TOU+tier", actor="t",
                         now=now)  # fmt: skip
        store.put_tariff(conn, "FLAT-1", {"kind": "flat", "price": "0.5283"}, old, actor="t",
                         now=now)  # fmt: skip
        store.put_tariff(conn, "NEXT", {"kind": "flat", "price": "0.61"}, now + timedelta(days=1),
                         actor="t", now=now)  # fmt: skip
        store.create_account(conn, "ACC-T", mode="prepaid", name="Wang", area="A2", actor="t",
                             now=now)  # fmt: skip
        conn.execute(
            update(meters).where(meters.c.point == "P-A2-m02").values(tariff_category="FLAT-1")
        )
        for link in (
                {"account": "ACC-T", "point": "P-A2-m01", "valid_from": old, "tariff": "RES-TT",
                 "split": {"kind": "ratio", "parts": [{"tariff": "FLAT-1", "ratio": "0.3"}]}},
                {"account": "ACC-T", "point": "P-A2-m02", "valid_from": old, "tariff": None},
                {"account": "ACC-T", "point": "P-A2-m03", "valid_from": old, "tariff": "NEXT"},
                {"account": "ACC-T", "point": "P-A2-m04", "valid_from": old - timedelta(days=9),
                 "valid_to": old, "tariff": "FLAT-1"},
        ):  # fmt: skip
            conn.execute(prepay_account_points.insert().values(**link))


def _speaks(web: Web, name: str, language: str) -> None:
    with writing(web.engine) as conn:
        conn.execute(update(users).where(users.c.name == name).values(language=language))


def _row(page: str, point: str) -> str:
    start = page.index(f'id="tariff-{point}"')
    return page[start : page.index("</tr>", start)]


def test_each_linked_point_shows_its_tariff_kind_prices_and_steps(web: Web) -> None:
    _linked(web)
    _speaks(web, "vera", "en")
    page = sign_in(web.app, "vera").get("/accounts/ACC-T")
    assert page.status_code == 200
    html = page.text
    tt = _row(html, "P-A2-m01")
    assert 'data-tariff="RES-TT"' in tt and 'data-kind="tou_tiered"' in tt
    assert "Residential TOU+tier" in tt and "Time of use with tiers" in tt
    for slot, price in (("sharp", "1.2000"), ("peak", "0.9000"), ("flat", "0.6000")):
        assert f'data-slot="{slot}">{slot.capitalize()} <span class="num">{price}</span>' in tt
    assert "00:00–08:00 Valley" in tt and "21:00–00:00 Sharp" in tt
    assert "per year" in tt and "surcharge per kWh" in tt
    assert "up to 2760 kWh" in tt and "up to 4800 kWh" in tt and "above" in tt
    assert '<span class="num">0.30</span>' in tt
    assert "0.3 → <code>FLAT-1</code>" in tt  # 30 % of the energy goes to FLAT-1
    flat = _row(html, "P-A2-m02")
    assert 'data-tariff="FLAT-1"' in flat and 'data-kind="flat"' in flat
    assert '<span class="num">0.5283</span>' in flat and "tariff category (archive)" in flat
    later = _row(html, "P-A2-m03")  # its first version starts tomorrow: nothing prices today
    assert 'data-tariff="NEXT"' in later and "No version of this tariff is in force now" in later
    assert 'id="tariff-P-A2-m04"' not in html  # the link ended a month ago


def test_tariffs_in_chinese(web: Web) -> None:
    _linked(web)
    _speaks(web, "vera", "zh")
    html = sign_in(web.app, "vera").get("/accounts/ACC-T").text
    tt = _row(html, "P-A2-m01")
    assert "分时 + 阶梯电价" in tt and "00:00–08:00 谷" in tt and "4800 kWh 以内" in tt
    assert "电表档案中的电价类别" in _row(html, "P-A2-m02")


def test_another_areas_user_sees_no_tariff(web: Web) -> None:
    _linked(web)
    add_user(web.engine, "bea", "viewer", ["B1"])
    page = sign_in(web.app, "bea").get("/accounts/ACC-T")
    assert page.status_code == 403 and "RES-TT" not in page.text


def test_the_demos_tariffs_show_with_their_kinds(web: Web) -> None:
    from taiqu.demo.prepay import TARIFFS  # what a newcomer sees after `make demo`

    now, old = web.now, web.now - timedelta(days=1)
    with writing(web.engine) as conn:
        store.create_account(conn, "ACC-D", mode="prepaid", area="A2", actor="t", now=now)
        for i, (tariff, definition) in enumerate(TARIFFS.items()):
            store.put_tariff(conn, tariff, definition, old, actor="t", now=now)
            conn.execute(
                prepay_account_points.insert().values(
                    account="ACC-D", point=f"P-A2-m0{i}", valid_from=old, tariff=tariff
                )
            )
    _speaks(web, "vera", "en")
    html = sign_in(web.app, "vera").get("/accounts/ACC-D").text
    kinds = dict(re.findall(r'data-tariff="([^"]+)" data-kind="(\w+)"', html))
    assert kinds == {t: d["kind"] for t, d in TARIFFS.items()}
    assert "tou_tiered" in kinds.values()
    assert "up to" in _row(html, f"P-A2-m0{list(TARIFFS).index('res-tou-tiered')}")
