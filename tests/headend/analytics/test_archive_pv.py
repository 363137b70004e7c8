"""The archive keeps the PV flag and the generation role; gateways are told to poll both."""

from __future__ import annotations

import csv
import io

from headend.archive import push
from headend.db import reading
from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401


def test_pv_flag_and_generation_role_through_api_csv_and_gateway_archive(ops):
    admin = ops.as_("ada")
    base = {"area": "A1", "bus": "bus1"}
    r = ops.client.post("/api/v1/meters", headers=admin,
                        json={**base, "id": "PV-1", "address": "000000000901", "pv": True})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["pv"] is True
    r = ops.client.post("/api/v1/meters", headers=admin,
                        json={**base, "id": "GEN-1", "address": "000000000902", "role": "generation"})  # fmt: skip
    assert r.status_code == 201, r.text
    bad = ops.client.post("/api/v1/meters", headers=admin,
                          json={**base, "id": "X-1", "address": "000000000903", "role": "solar"})  # fmt: skip
    assert bad.status_code == 422
    later = {"at": "2026-03-11T00:00:00+00:00"}  # a new version after the creation
    r = ops.client.patch("/api/v1/meters/PV-1", headers=admin, json={"pv": False}, params=later)
    assert r.status_code == 200 and r.json()["pv"] is False
    with reading(ops.engine) as conn:
        polled = {m.id: m.role for m in push.gateway_meters(conn, "gw1")}
    assert polled["GEN-1"] == "customer" and polled["PV-1"] == "customer"
    exported = ops.client.get("/api/v1/meters/export.csv", headers=admin, params=later)
    assert exported.status_code == 200, exported.text
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert rows["GEN-1"]["role"] == "generation" and rows["PV-1"]["pv"] == "false"
