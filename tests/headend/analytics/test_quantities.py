"""Collection success per meter and quantity: collected only when a reading arrived; what the
gateway said a meter does not give is unavailable, with its reason (both backends)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

from sqlalchemy import insert

from headend.analytics.model import boundary
from headend.analytics.quantities import (
    QuantityFacts,
    open_unavailable,
    quantity_collection,
)
from headend.db import writing
from headend.db.tables import events, readings
from tests.headend.ops_support import (  # noqa: F401
    SHANGHAI,
    SINCE,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

DAY = date(2026, 3, 9)
E, VA, VB = "energy.active.import.total", "voltage.a", "voltage.b"


def test_a_quantity_counts_only_for_the_meters_that_gave_it() -> None:
    facts = QuantityFacts(
        peers={"m1": "dlt645-2007/", "m2": "dlt645-2007/", "m3": "dlt645-2007/", "q1": "modbus/X"},
        collected={"m1": frozenset({E, VA, VB}), "m2": frozenset({E, VA}), "q1": frozenset({E})},
        unavailable={"m2": {VB: "refused"}},
    )
    states, rates = quantity_collection(facts)
    by = {(s.meter, s.quantity): (s.state, s.reason) for s in states}
    assert by[("m2", VB)] == ("unavailable", "refused")
    assert by[("m3", E)] == ("missing", "")  # m3 gave nothing: every quantity its peers gave
    assert ("q1", VA) not in by  # a Modbus model is not asked what DL/T 645 meters give
    rate = {r.quantity: r for r in rates}
    assert (rate[VB].due, rate[VB].collected, rate[VB].unavailable, rate[VB].missing) == (
        3,
        1,
        1,
        1,
    )
    assert str(rate[VB].success_rate) == "0.3333" and str(rate[E].success_rate) == "0.7500"


def test_an_identifier_that_answers_again_ends_its_unavailability() -> None:
    lost = {"identifier": "02010200", "reason": "unsupported", "quantities": [VB]}
    block = {"identifier": "0201FF00", "reason": "undecodable", "quantities": []}
    history = [
        ("m1", "quantity_unavailable", lost),
        ("m1", "quantity_unavailable", block),  # a block read by members instead: loses nothing
        ("m2", "quantity_unavailable", lost),
        ("m2", "quantity_available", {"identifier": "02010200", "quantities": [VB]}),
        ("m3", "quantity_unavailable", lost),
        ("m3", "quantity_available", {"identifier": "0201FF00", "quantities": []}),
    ]
    assert open_unavailable(history) == {"m1": {VB: "unsupported"}, "m3": {VB: "unsupported"}}


def seed(engine) -> None:
    """Area A2 on ``DAY``: m00 gives all, m01 refuses voltage.b (said), m02 silent on it (not
    said), m03 gave voltage.b only the day before, m04 recovered voltage.b before the day."""
    t0 = boundary(DAY, SHANGHAI)
    noon = t0 + timedelta(hours=12)
    rows = []
    gave = {0: (E, VA, VB), 1: (E, VA), 2: (E, VA), 3: (E, VA), 4: (E, VA, VB)}
    for i, quantities in gave.items():
        for q in quantities:
            rows.append((meter_id("A2", i), q, noon))
    rows.append((meter_id("A2", 3), VB, t0 - timedelta(hours=1)))
    lost = json.dumps({"identifier": "02010200", "reason": "refused", "quantities": [VB]})
    back = json.dumps({"identifier": "02010200", "quantities": [VB]})
    with writing(engine) as conn:
        conn.execute(
            insert(readings),
            [{"meter": m, "quantity": q, "time": t, "kind": "interval", "value": "1",
              "gateway": "gw2", "gateway_time": t} for m, q, t in rows],
        )  # fmt: skip
        conn.execute(  # a load record of m03 brings voltage.b: not a scheduled read of it
            insert(readings).values(
                meter=meter_id("A2", 3), quantity=VB, time=noon + timedelta(minutes=15),
                kind="interval", value="1", gateway="gw2", gateway_time=noon,
                flags="load_profile",
            )
        )  # fmt: skip
        conn.execute(
            insert(events),
            [
                {"key": k, "gateway": "gw2", "meter": meter_id("A2", i), "type": kind,
                 "time": t, "detected": d, "details": x, "received": SINCE}
                for k, i, kind, t, d, x in (
                    ("u1", 1, "quantity_unavailable", t0 - timedelta(days=3),
                     t0 - timedelta(days=3), lost),
                    ("u4", 4, "quantity_unavailable", t0 - timedelta(days=3),
                     t0 - timedelta(days=3), lost),
                    # available: start = since when it was not (time), detected = when it came back
                    ("a4", 4, "quantity_available", t0 - timedelta(days=3),
                     t0 - timedelta(days=1), back),
                )
            ],
        )  # fmt: skip


def test_collection_per_quantity_through_the_api(ops) -> None:
    seed(ops.engine)
    path = "/api/v1/analytics/areas/A2/collection/quantities"
    r = ops.client.get(path, params={"day": DAY.isoformat()}, headers=ops.as_("vic"))
    assert r.status_code == 200, r.text
    body = r.json()
    rate = {q["quantity"]: q for q in body["quantities"]}
    assert (rate[VB]["due"], rate[VB]["collected"], rate[VB]["unavailable"]) == (5, 2, 1)
    assert rate[VB]["missing"] == 2 and rate[VB]["success_rate"] == "0.4000"
    assert rate[E]["success_rate"] == "1.0000"
    states = {(m["meter"], m["quantity"]): m for m in body["meters"]}
    assert states[(meter_id("A2", 1), VB)]["state"] == "unavailable"
    assert states[(meter_id("A2", 1), VB)]["reason"] == "refused"
    # neither yesterday's reading nor a load record counts
    assert states[(meter_id("A2", 3), VB)]["state"] == "missing"
    assert states[(meter_id("A2", 4), VB)]["state"] == "collected"
    text = ops.client.get(
        path, params={"day": DAY.isoformat(), "format": "csv"}, headers=ops.as_("vic")
    ).text
    assert {row["quantity"]: row["success_rate"] for row in csv.DictReader(io.StringIO(text))}[
        VB
    ] == "0.4000"
    # another area's operator may not look; an unknown area is a clear 4xx
    assert (
        ops.client.get(
            "/api/v1/analytics/areas/A1/collection/quantities", headers=ops.as_("ola")
        ).status_code
        == 403
    )
    unknown = ops.client.get(
        "/api/v1/analytics/areas/ZZ/collection/quantities", headers=ops.as_("vic")
    )
    assert 400 <= unknown.status_code < 500 and "ZZ" in unknown.text
    bad = ops.client.get(path, params={"day": "yesterday"}, headers=ops.as_("vic"))
    assert bad.status_code == 422
