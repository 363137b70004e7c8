"""The archive's ESAM flag: only DL/T 645-2007 meters; CSV column optional and validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from headend.archive.csvio import _parse
from headend.archive.models import MeterIn
from headend.db.errors import InvalidRequest


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
