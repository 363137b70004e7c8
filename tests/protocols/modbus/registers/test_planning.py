"""Block planning: the fewest reads that cover the wanted quantities, within the limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.modbus.registers import (
    load_map,
    plan_reads,
)
from tests.protocols.modbus.registers.samples import MODELS


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
