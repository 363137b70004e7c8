"""DL/T 698.45 meters in the head-end archive: validated like DL/T 645, imported from CSV and
pushed to their gateway with protocol ``dlt698``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from headend.archive import csvio
from headend.archive.models import MeterIn
from headend.archive.push import gateway_meters
from headend.db import reading, writing
from protocols.uplink import decode_message, encode
from protocols.uplink.messages import ArchivePush
from protocols.uplink.topics import Topics
from tests.headend.ops_support import TUESDAY_10, seed_archive


def test_a_698_meter_has_a_twelve_digit_address_and_no_esam_yet() -> None:
    assert MeterIn(id="m1", area="A1", bus="b", protocol="dlt698", address="202612060001")
    with pytest.raises(ValidationError, match="12 digits"):
        MeterIn(id="m2", area="A1", bus="b", protocol="dlt698", address="7")
    with pytest.raises(ValidationError, match="ESAM"):  # secured 698 comes with its issue
        MeterIn(id="m3", area="A1", bus="b", protocol="dlt698", address="0" * 12, esam=True)


def test_a_698_meter_imported_from_csv_is_pushed_to_its_gateway(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    seed_archive(sqlite_engine)
    text = "id,area,bus,protocol,address\nA2-698,A2,bus1,dlt698,202612060001\n"
    with writing(sqlite_engine) as conn:
        report = csvio.import_meters(conn, text, "test", TUESDAY_10)
    assert report.created == ["A2-698"]
    with reading(sqlite_engine) as conn:
        pushed = {m.id: m for m in gateway_meters(conn, "gw2", TUESDAY_10)}
    assert pushed["A2-698"].protocol == "dlt698" and pushed["A2-698"].address == "202612060001"
    push = ArchivePush(gateway="gw2", version=1, issued=TUESDAY_10, meters=tuple(pushed.values()))
    _, _, back = decode_message(Topics("gw2").archive, encode(push))  # what the gateway gets
    assert isinstance(back, ArchivePush)
    assert {m.id: m.protocol for m in back.meters}["A2-698"] == "dlt698"
