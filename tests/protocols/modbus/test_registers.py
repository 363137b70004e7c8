"""Register maps as data: loading, validation, block planning, Decimal decode/encode."""

from __future__ import annotations

import itertools
import struct
from decimal import Decimal
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import quantities
from protocols.modbus.errors import MapError, ModbusError, ModbusUsageError
from protocols.modbus.registers import (
    decode_block,
    encode_values,
    load_map,
    models,
    parse_map,
    plan_reads,
    read_image,
)

MODELS = ["DDSU666", "DTSU666", "SDM120", "SDM630"]


def float_words(value: float) -> tuple[int, int]:
    return struct.unpack(">HH", struct.pack(">f", value))


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


def _minimal(**row):
    base = {
        "quantity": "voltage.a",
        "address": 0,
        "function": 4,
        "type": "float32",
        "unit": "V",
        "resolution": "0.1",
    }
    return {
        "model": "X",
        "vendor": "v",
        "title": "t",
        "phases": 1,
        "sources": ["s"],
        "registers": [base | row],
        "serial": {
            "baud": 9600,
            "parity": "N",
            "data_bits": 8,
            "stop_bits": 1,
            "baud_options": [9600],
            "unit_ids": [1, 247],
            "default_unit": 1,
        },
    }


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
        parse_map(_minimal(**row))


def test_overlapping_registers_are_rejected():
    data = _minimal()
    data["registers"].append(dict(data["registers"][0], quantity="current.a", address=1, unit="A"))
    with pytest.raises(MapError):
        parse_map(data)


def test_full_plans_are_the_fewest_reads():
    # SDM630: 0x0000…0x004F is one 80-register read (the vendor's 40-parameter limit), then N current.
    assert [(b.function, b.address, b.count) for b in plan_reads("SDM630")] == [
        (4, 0, 80),
        (4, 0xE0, 2),
    ]
    assert [(b.function, b.address, b.count) for b in plan_reads("DDSU666")] == [
        (3, 0x2000, 16),
        (3, 0x4000, 12),
    ]


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
@settings(deadline=None, max_examples=40)
def test_plans_cover_each_quantity_once_within_limits(model, data):
    meter = load_map(model)
    wanted = data.draw(st.lists(st.sampled_from(meter.quantities), min_size=1, unique=True))
    plan = plan_reads(model, wanted)
    assert sorted(q for b in plan for q in b.quantities) == sorted(wanted)
    for block in plan:
        assert 1 <= block.count <= meter.max_read <= 125
        for q in block.quantities:
            row = meter.register(q)
            assert row.function == block.function
            assert block.address <= row.address and row.end <= block.address + block.count
    for a, b in itertools.pairwise(plan):  # greedy: no two neighbours could have been one read
        if a.function == b.function:
            assert (
                b.address - (a.address + a.count) > meter.max_gap
                or b.address + b.count - a.address > meter.max_read
            )


def test_golden_ddsu666_voltage_from_tasmota_example():
    # "01 04 04 43 66 33 34 1B 38 = 230.2 Volt" (Tasmota xnrg_11_ddsu666.ino)
    assert decode_block("DDSU666", 3, 0x2000, [0x4366, 0x3334]) == {"voltage.a": Decimal("230.20")}


def test_dtsu666_raw_units_are_scaled_to_canonical():
    regs = [
        *float_words(2301.5),
        *float_words(0.0),
        *float_words(0.0),
        *float_words(5123.0),
        *float_words(0.0),
        *float_words(0.0),
        *float_words(35217.0),
    ]
    values = decode_block("DTSU666", 3, 0x2006, regs)
    assert values["voltage.a"] == Decimal("230.15")
    assert values["current.a"] == Decimal("5.123")
    assert values["power.active.total"] == Decimal("3.5217")  # 35217 × 0.1 W


def test_eastron_watts_become_kilowatts_and_nan_is_left_out():
    regs = read_image({4: {}}, 4, 0, 32)
    regs[0x0C:0x0E] = float_words(-1234.5)  # exporting
    regs[0x00:0x02] = float_words(float("nan"))
    regs[0x1E:0x20] = float_words(-0.0)
    values = decode_block("SDM120", 4, 0, regs)
    assert values["power.active.total"] == Decimal("-1.2345")
    assert "voltage.a" not in values
    assert str(values["power_factor.total"]) == "0.000"


def test_decode_block_errors():
    with pytest.raises(ModbusUsageError):
        decode_block("SDM120", 4, 0, [0, 0], ["frequency"])
    with pytest.raises(ModbusError):
        decode_block("SDM120", 4, 0, [0x10000, 0])


def test_integer_types_and_little_word_order():
    data = _minimal(
        type="uint32",
        word_order="little",
        scale="0.01",
        unit="kWh",
        quantity="energy.active.import.total",
        resolution="0.01",
        function=3,
    )
    data["registers"].append(
        {
            "quantity": "power.active.total",
            "address": 2,
            "function": 3,
            "type": "int16",
            "unit": "W",
            "resolution": "1",
        }
    )
    meter = parse_map(data)
    image = encode_values(
        meter, {"energy.active.import.total": "123456.78", "power.active.total": "-0.25"}
    )
    assert read_image(image, 3, 0, 3) == [12345678 & 0xFFFF, 12345678 >> 16, 0xFF06]
    values = decode_block(meter, 3, 0, read_image(image, 3, 0, 3))
    assert values == {
        "energy.active.import.total": Decimal("123456.78"),
        "power.active.total": Decimal("-0.250"),
    }
    with pytest.raises(ModbusUsageError):
        encode_values(meter, {"energy.active.import.total": -1})
    with pytest.raises(ModbusUsageError):
        encode_values(meter, {"power.active.total": "NaN"})


RANGES = {
    "V": (0, 500),
    "A": (0, 200),
    "kW": (-100, 100),
    "kvar": (-100, 100),
    "kVA": (0, 100),
    "": (-1, 1),
    "Hz": (45, 65),
    "kWh": (0, 999999),
    "kvarh": (0, 999999),
}


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
@settings(deadline=None, max_examples=30)
def test_encode_then_decode_is_identity_within_resolution(model, data):
    meter = load_map(model)
    values = {}
    for row in meter.registers:
        lo, hi = RANGES[quantities.get(row.quantity).unit]
        steps = data.draw(st.integers(int(lo / row.resolution), int(hi / row.resolution)))
        values[row.quantity] = steps * row.resolution
    image = encode_values(model, values)
    decoded = {}
    for block in plan_reads(model):
        decoded |= decode_block(
            model,
            block.function,
            block.address,
            read_image(image, block.function, block.address, block.count),
        )
    assert decoded.keys() == values.keys()
    for q, v in values.items():
        res = meter.register(q).resolution
        float32_error = abs(v) * Decimal(2) ** -23
        if float32_error < res / 4:
            assert decoded[q] == v, q
        else:  # e.g. > 83 886 kWh at 0.01 kWh: a float32 meter cannot hold it exactly either
            assert abs(decoded[q] - v) <= float32_error + res / 2, q
