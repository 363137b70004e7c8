"""The archive's ESAM flag: only DL/T 645-2007 meters; CSV column optional and validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from headend.archive.csvio import _parse
from headend.archive.models import MeterIn
from headend.db.errors import InvalidRequest
from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401


def test_only_dlt645_2007_meters_have_an_esam():
    meter = MeterIn(id="m1", area="A1", bus="bus1", address="000000000001", esam=True)
    assert meter.esam is True
    assert MeterIn(id="m2", area="A1", bus="bus1", address="000000000002").esam is False
    with pytest.raises(ValidationError, match="ESAM"):
        MeterIn(id="m3", area="A1", bus="b", protocol="modbus", address="7", esam=True)
    with pytest.raises(ValidationError, match="ESAM"):
        MeterIn(id="m4", area="A1", bus="b", protocol="dlt645-1997", address="0" * 12, esam=True)


def test_csv_esam_column_is_optional_and_validated():
    rows = _parse(
        "id,area,bus,address,esam\nm1,A1,bus1,000000000001,yes\nm2,A1,bus1,000000000002,\n"
    )
    assert [(m.id, m.esam) for _, m in rows] == [("m1", True), ("m2", False)]
    rows = _parse("id,area,bus,address\nm1,A1,bus1,000000000001\n")
    assert rows[0][1].esam is False
    with pytest.raises(InvalidRequest, match="esam must be true or false"):
        _parse("id,area,bus,address,esam\nm1,A1,bus1,000000000001,maybe\n")


def test_the_flag_through_the_api_and_the_csv_export(ops):
    admin = ops.as_("ada")
    body = {"id": "Y1", "area": "A1", "bus": "bus1", "address": "000000000777", "esam": True}
    r = ops.client.post("/api/v1/meters", json=body, headers=admin)
    assert r.status_code in (200, 201), r.text
    assert r.json()["esam"] is True
    r = ops.client.post("/api/v1/meters", json={**body, "id": "Y2", "protocol": "modbus",
                                                "address": "7"}, headers=admin)  # fmt: skip
    assert r.status_code == 422
    ops.clock.advance(60)
    r = ops.client.patch("/api/v1/meters/Y1", json={"esam": False}, headers=admin)
    assert r.status_code == 200, r.text
    assert ops.client.get("/api/v1/meters/Y1", headers=admin).json()["esam"] is False
    csv_text = ops.client.get("/api/v1/meters/export.csv", headers=admin).text
    assert csv_text.splitlines()[0].endswith(",keep_power,pv,esam")
