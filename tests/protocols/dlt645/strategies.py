"""Hypothesis strategies for DL/T 645 frames and identifier values."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal

from hypothesis import strategies as st

from protocols.dlt645 import DATA_IDS, PATTERNS, DataId, Frame, Version
from protocols.dlt645.data_ids import specialize
from protocols.dlt645.layouts import (
    Bcd,
    Bits,
    DateWeek,
    DateWeekTime,
    Digits,
    EventRecord,
    Group,
    Layout,
    Record,
    Stamp,
    TimeOfDay,
)
from protocols.dlt645.load_profile import ProfileRecord, ProfileRecords
from protocols.model import MeterTime

addresses = st.text("0123456789", min_size=12, max_size=12)
frames = st.builds(
    Frame,
    address=addresses | st.just("AAAAAAAAAAAA"),
    control=st.integers(0, 255),
    data=st.binary(max_size=60),
)


def value_of(layout: Layout) -> st.SearchStrategy[object]:
    """A strategy of values ``layout`` can encode."""
    if isinstance(layout, Bcd):
        top = (8 if layout.signed else 10) * 10 ** (layout.digits - 1) - 1
        ints = st.integers(-top if layout.signed else 0, top)
        return ints if layout.integer else ints.map(lambda n: Decimal(n).scaleb(-layout.decimals))
    if isinstance(layout, Digits):
        return st.text("0123456789", min_size=2 * layout.length, max_size=2 * layout.length)
    if isinstance(layout, Stamp):
        stamps = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
        if "ss" not in layout.fmt:
            stamps = stamps.map(lambda d: d.replace(second=0))
        return st.none() | stamps.map(lambda d: MeterTime(d.replace(microsecond=0)))
    if isinstance(layout, DateWeekTime):
        stamps = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
        return st.none() | stamps.map(lambda d: MeterTime(d.replace(microsecond=0)))
    if isinstance(layout, DateWeek):
        return st.dates(datetime(2000, 1, 1).date(), datetime(2099, 12, 31).date())
    if isinstance(layout, TimeOfDay):
        return st.times().map(lambda t: time(t.hour, t.minute, t.second))
    if isinstance(layout, Bits):
        return st.integers(0, 0xFFFF)
    if isinstance(layout, Record):
        return st.builds(
            EventRecord,
            value_of(layout.stamp),
            value_of(layout.stamp),
            st.fixed_dictionaries({name: value_of(lay) for name, lay in layout.fields}),
        )
    if isinstance(layout, Group):
        return st.fixed_dictionaries({name: value_of(lay) for name, lay in layout.fields})
    if isinstance(layout, ProfileRecords):
        record = st.builds(
            ProfileRecord,
            value_of(layout.stamp),
            st.fixed_dictionaries({name: value_of(lay) for name, lay in layout.fields}),
        )
        return st.lists(record, min_size=1, max_size=4).map(tuple)
    raise AssertionError(f"no strategy for {layout!r}")


def all_rows() -> list[DataId]:
    """Every concrete row plus the first and last instance of every pattern row."""
    rows = [row for table in DATA_IDS.values() for row in table.values()]
    for version in Version:
        for row in PATTERNS[version].values():
            assert row.di0_range is not None
            rows += [specialize(row, n) for n in row.di0_range]
    return rows
