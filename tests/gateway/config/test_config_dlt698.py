"""DL/T 698.45 meters in the gateway configuration: addresses, uniqueness, bus budget, archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, parse_config
from gateway.config.budget import bus_utilisation, items_per_visit
from gateway.polling.dlt698 import Dlt698Driver
from gateway.polling.drivers import make_driver

BASE: dict[str, Any] = {"gateway_id": "gw-1", "signatures": {"required": False}}
BUS = {"name": "bus1", "port": "socket://127.0.0.1:7001", "baud": 2400}


def doc(*meters: dict[str, Any]) -> dict[str, Any]:
    return BASE | {"buses": [BUS], "meters": list(meters)}


def test_a_698_meter_is_configured_by_its_nameplate_address() -> None:
    cfg = parse_config(
        doc({"bus": "bus1", "protocol": "dlt698", "address": "202612060001"}), Path("gw.toml")
    )
    meter = cfg.meters[0]
    assert meter.id == "202612060001" and meter.to_archive().protocol == "dlt698"
    assert isinstance(make_driver(meter, cfg.zone), Dlt698Driver)


@pytest.mark.parametrize("address", ["20261206000", "2026120600011", "AAAAAAAAAAAA", "7"])
def test_a_698_address_that_is_not_twelve_digits_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="12 digits"):
        parse_config(
            doc({"bus": "bus1", "protocol": "dlt698", "address": address}), Path("gw.toml")
        )


def test_a_698_and_a_645_meter_cannot_share_an_address_on_one_bus() -> None:
    same = [
        {"bus": "bus1", "protocol": "dlt698", "address": "202612060001", "id": "a"},
        {"bus": "bus1", "protocol": "dlt645-2007", "address": "202612060001", "id": "b"},
    ]
    with pytest.raises(ConfigError, match="addresses are unique per bus"):
        parse_config(doc(*same), Path("gw.toml"))


def test_a_698_visit_is_one_transaction_per_group() -> None:
    cfg = parse_config(
        doc({"bus": "bus1", "protocol": "dlt698", "address": "202612060001"}), Path("gw.toml")
    )
    meter = cfg.meters[0]
    assert [items_per_visit(meter, g) for g in ("energy", "events", "instant", "frozen")] == [
        1,
        1,
        1,
        1,
    ]
    assert items_per_visit(meter, "frozen", frozen_export=True) == 1  # a column of the same row
    many = [
        {"bus": "bus1", "protocol": proto, "address": f"2026{i:08d}"}
        for i, proto in enumerate(["dlt698"] * 40 + ["dlt645-2007"] * 40, start=1)
    ]
    use = bus_utilisation(parse_config(doc(*many), Path("gw.toml")))["bus1"]
    only_645 = bus_utilisation(
        parse_config(doc(*(m | {"protocol": "dlt645-2007"} for m in many)), Path("gw.toml"))
    )["bus1"]
    assert use < only_645  # 698 reads whole lists in one GET
