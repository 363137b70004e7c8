"""Remote-control commands reach only switchable meters: never an area total meter, never Modbus."""

from __future__ import annotations

from sqlalchemy import insert

from headend.db import writing
from headend.db.tables import meters
from tests.headend.ops_support import (  # noqa: F401
    SINCE,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)


def add_unswitchable(ops) -> None:
    with writing(ops.engine) as conn:
        conn.execute(
            insert(meters),
            [
                {"id": "A2-total", "point": "P-A2-total", "area": "A2", "bus": "bus1",
                 "protocol": "dlt645-2007", "address": "000000009999", "role": "area_total",
                 "valid_from": SINCE},
                {"id": "A2-mb1", "point": "P-A2-mb1", "area": "A2", "bus": "bus2",
                 "protocol": "modbus", "address": "1", "model": "DDSU666", "role": "customer",
                 "valid_from": SINCE},
            ],
        )  # fmt: skip


def test_an_area_disconnect_leaves_out_the_area_total_and_relay_less_meters(ops):
    add_unswitchable(ops)
    r = ops.command("olga", action="relay_trip", areas=["A2"])
    assert r.status_code in (200, 201, 202), r.text
    got = ops.client.get(f"/api/v1/commands/{r.json()['id']}", headers=ops.as_("olga")).json()
    targeted = {t["meter"] for t in got["targets"]}
    assert targeted == {meter_id("A2", i) for i in range(5)}
    # a read still covers every meter of the area
    r = ops.command("olga", action="read", areas=["A2"])
    got = ops.client.get(f"/api/v1/commands/{r.json()['id']}", headers=ops.as_("olga")).json()
    assert {"A2-total", "A2-mb1"} <= {t["meter"] for t in got["targets"]}


def test_naming_an_unswitchable_meter_is_a_clear_400(ops):
    add_unswitchable(ops)
    r = ops.command("olga", action="relay_trip", meters=["A2-total"])
    assert r.status_code == 400 and "never switched" in r.text
    r = ops.command("olga", action="relay_close_direct", meters=[meter_id("A2", 1), "A2-mb1"])
    assert r.status_code == 400 and "no remote control" in r.text


def test_a_698_meter_takes_relay_commands(ops):
    with writing(ops.engine) as conn:
        conn.execute(
            insert(meters),
            [{"id": "A2-698", "point": "P-A2-698", "area": "A2", "bus": "bus1",
              "protocol": "dlt698", "address": "202612060001", "role": "customer",
              "valid_from": SINCE}],
        )  # fmt: skip
    r = ops.command("olga", action="relay_trip", meters=["A2-698"])
    assert r.status_code in (200, 201, 202), r.text
    got = ops.client.get(f"/api/v1/commands/{r.json()['id']}", headers=ops.as_("olga")).json()
    assert {t["meter"] for t in got["targets"]} == {"A2-698"}
