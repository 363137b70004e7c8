"""Register maps as data: the shipped maps, loading and validation of map files."""

from __future__ import annotations

from importlib import resources

import pytest

from protocols import quantities
from protocols.modbus.errors import MapError
from protocols.modbus.registers import (
    encode_values,
    load_map,
    models,
    parse_map,
    plan_reads,
)
from tests.protocols.modbus.registers.samples import MODELS, minimal_map


def test_the_four_models_ship():
    assert models() == MODELS


@pytest.mark.parametrize("model", MODELS)
def test_each_map_is_canonical_and_cites_its_sources(model):
    meter = load_map(model)
    assert meter.registers and meter.sources
    for row in meter.registers:
        assert quantities.is_known(row.quantity)
    text = resources.files("protocols.modbus.maps").joinpath(f"{model.lower()}.toml").read_text()
    assert text.startswith("#") and "Sources" in text
    assert 1 <= meter.serial.unit_min <= meter.serial.default_unit <= meter.serial.unit_max <= 247
    assert meter.serial.baud in meter.serial.baud_options
    assert {"energy.active.import.total", "voltage.a", "frequency"} <= set(meter.quantities)


def test_serial_defaults_follow_the_vendors():
    assert load_map("sdm120").serial.baud == 2400
    assert {load_map(m).serial.baud for m in ("SDM630", "DDSU666", "DTSU666")} == {9600}


def test_unknown_model_and_quantity_are_map_errors():
    with pytest.raises(MapError):
        load_map("DDS238")
    with pytest.raises(MapError):
        plan_reads("SDM120", ["voltage.b"])
    with pytest.raises(MapError):
        encode_values("SDM120", {"voltage.c": 1})


@pytest.mark.parametrize(
    "row",
    [
        {"quantity": "voltage.x"},
        {"function": 6},
        {"type": "float16"},
        {"word_order": "middle"},
        {"unit": "kV"},
        {"scale": "0"},
        {"address": 0xFFFF},
        {"colour": "red"},
    ],
)
def test_malformed_rows_are_rejected(row):
    with pytest.raises(MapError):
        parse_map(minimal_map(**row))


def test_overlapping_registers_are_rejected():
    data = minimal_map()
    data["registers"].append(dict(data["registers"][0], quantity="current.a", address=1, unit="A"))
    with pytest.raises(MapError):
        parse_map(data)
