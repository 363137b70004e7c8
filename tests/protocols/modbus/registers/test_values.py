"""Register values: Decimal decode against golden examples, encode/decode round trips."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import quantities
from protocols.modbus.errors import ModbusError, ModbusUsageError
from protocols.modbus.registers import (
    decode_block,
    encode_values,
    load_map,
    parse_map,
    plan_reads,
    read_image,
)
from tests.protocols.modbus.registers.samples import MODELS, minimal_map

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


def float_words(value: float) -> tuple[int, int]:
    return struct.unpack(">HH", struct.pack(">f", value))


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
    data = minimal_map(
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
