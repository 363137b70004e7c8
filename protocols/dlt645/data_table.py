"""The rows of the data-identifier table (2007 and 1997).

Literal tables below; the few comprehensions only spell out tariffs 1–4 and phases A–C of one
line each.  ``quantity`` is the canonical name from ``protocols.quantities`` (``None`` where
there is none; the value key is then a descriptive slug).  Certainty follows
``shared/DLT645.md``: V (several sources), 1 (one source), ? (conflicting; reading chosen noted).
"""

from __future__ import annotations

from dataclasses import replace

from protocols import quantities
from protocols.dlt645.control import Version
from protocols.dlt645.data_ids import DataId, Member
from protocols.dlt645.layouts import (
    Bcd,
    Bits,
    DateWeek,
    DateWeekTime,
    Digits,
    Group,
    Layout,
    Record,
    Stamp,
    TimeOfDay,
)
from protocols.dlt645.load_profile import (
    CATEGORIES,
    EARLIEST,
    GIVEN_TIME,
    MOST_RECENT,
    ProfileRecords,
    profile_di,
)

V7, V9 = Version.V2007, Version.V1997

# Combined energies may be negative (sign bit in the top byte) [?]: we read them as signed;
# forward/reverse energies are unsigned.
COMBINED_SIGNED = True

# (DI2, key prefix, description, unit, signed)
ENERGY_2007 = (
    (0x00, "energy.active.combined", "combined active energy", "kWh", COMBINED_SIGNED),
    (0x01, "energy.active.import", "forward active energy", "kWh", False),
    (0x02, "energy.active.export", "reverse active energy", "kWh", False),
    (0x03, "energy.reactive.combined1", "combined reactive energy 1", "kvarh", COMBINED_SIGNED),
    (0x04, "energy.reactive.combined2", "combined reactive energy 2", "kvarh", COMBINED_SIGNED),
    (0x05, "energy.reactive.q1", "quadrant I reactive energy", "kvarh", False),
    (0x06, "energy.reactive.q2", "quadrant II reactive energy", "kvarh", False),
    (0x07, "energy.reactive.q3", "quadrant III reactive energy", "kvarh", False),
    (0x08, "energy.reactive.q4", "quadrant IV reactive energy", "kvarh", False),
    (0x09, "energy.apparent.import", "forward apparent energy", "kVAh", False),
    (0x0A, "energy.apparent.export", "reverse apparent energy", "kVAh", False),
)
SETTLEMENT_PERIODS = (0x00, 0x0C)  # DI0 00 current, 01–0C previous settlement periods
FREEZES = (0x01, 0x3E)  # DI0 01–3E: the 1st … 62nd last daily freeze
RECORDS = (0x01, 0x0A)  # DI0 01–0A: the 1st … 10th last event record


def _q(key: str) -> str | None:
    return key if quantities.is_known(key) else None


def _energy_members(prefix: str, what: str, unit: str, layout: Layout) -> tuple[Member, ...]:
    keys = [(f"{prefix}.total", f"{what}, total")]
    keys += [(f"{prefix}.t{n}", f"{what}, tariff {n}") for n in range(1, 5)]
    return tuple(Member(k, name, _q(k), unit, layout.fmt) for k, name in keys)


def _block(
    di: int,
    version: Version,
    name: str,
    members: tuple[Member, ...],
    layouts: tuple[Layout, ...],
    unit: str,
    repeat_tail: str = "",
    **extra: object,
) -> DataId:
    group = Group(tuple((m.key, lay) for m, lay in zip(members, layouts, strict=True)), repeat_tail)
    slug = name.replace(" ", "_").replace(",", "")
    return DataId(di, version, name, slug, None, unit, group, members, **extra)  # type: ignore[arg-type]


def _energy_rows_2007() -> list[DataId]:
    rows: list[DataId] = []
    for di2, prefix, what, unit, signed in ENERGY_2007:
        layout = Bcd(8, 2, signed=signed)
        for t in range(5):
            key = f"{prefix}.total" if t == 0 else f"{prefix}.t{t}"
            name = f"{what}, total" if t == 0 else f"{what}, tariff {t}"
            di = di2 << 16 | t << 8
            rows.append(
                DataId(di, V7, name, key, _q(key), unit, layout, di0_range=SETTLEMENT_PERIODS)
            )
        members = _energy_members(prefix, what, unit, layout)
        rows.append(
            _block(
                di2 << 16 | 0xFF00,
                V7,
                f"{what} block",
                members,
                (layout,) * 5,
                unit,
                repeat_tail=f"{prefix}.t",
                di0_range=SETTLEMENT_PERIODS,
            )
        )
    return rows


def _instant(di: int, name: str, key: str, unit: str, layout: Layout, **extra: object) -> DataId:
    return DataId(di, V7, name, key, _q(key), unit, layout, **extra)  # type: ignore[arg-type]


def _phase_rows(
    base: int, what: str, prefix: str, unit: str, layout: Layout, total: bool, version: Version
) -> list[DataId]:
    """Phase rows ``base+1..3`` (and total ``base``) plus the FF block."""
    phases = ([("total", "total", 0)] if total else []) + [
        (p, f"phase {p.upper()}", i) for i, p in enumerate("abc", start=1)
    ]
    step = 0x100 if version is V7 else 1
    block_di = base | (0xFF00 if version is V7 else 0xF)
    rows = [
        DataId(
            base + i * step,
            version,
            f"{what}, {label}",
            f"{prefix}.{p}",
            _q(f"{prefix}.{p}"),
            unit,
            layout,
        )
        for p, label, i in phases
    ]
    members = tuple(Member(r.key, r.name, r.quantity, unit, layout.fmt) for r in rows)
    rows.append(_block(block_di, version, f"{what} block", members, (layout,) * len(rows), unit))
    return rows


SW_BITS: dict[int, dict[int, str]] = {
    1: {
        1: "demand_method_slip",
        2: "clock_battery_low",
        3: "reading_battery_low",
        4: "active_power_reversed",
        5: "reactive_power_reversed",
    },
    2: {
        0: "active_reversed_a",
        1: "active_reversed_b",
        2: "active_reversed_c",
        4: "reactive_reversed_a",
        5: "reactive_reversed_b",
        6: "reactive_reversed_c",
    },
    # SW3 b1–b2 supply (01 auxiliary, 10 battery), b8–b9 meter type (01 energy, 10 money
    # prepay): each bit named for the state it flags when set.  b13–b15 vary [?]: "bitN".
    3: {
        0: "second_timetable",
        1: "supply_auxiliary",
        2: "supply_battery",
        3: "programming_allowed",
        4: "relay_open",
        6: "relay_command_trip",
        7: "pre_trip_alarm",
        8: "energy_prepay",
        9: "money_prepay",
        12: "keep_power",
    },
    **{
        n: {
            0: "voltage_loss",
            1: "under_voltage",
            2: "over_voltage",
            3: "current_loss",
            4: "over_current",
            5: "overload",
            6: "power_reversed",
            7: "phase_break",
            8: "current_break",
        }
        for n in (4, 5, 6)
    },
    7: {
        0: "voltage_sequence_reversed",
        1: "current_sequence_reversed",
        2: "voltage_unbalance",
        3: "current_unbalance",
        4: "auxiliary_supply_lost",
        5: "power_down",
        6: "demand_over_limit",
        7: "power_factor_under_limit",
        8: "severe_current_unbalance",
        9: "meter_cover_open",
        10: "terminal_cover_open",
    },
}


def _status_rows() -> list[DataId]:
    rows = [
        _instant(0x04000500 + n, f"status word {n}", f"status.word{n}", "", Bits(n, SW_BITS[n]))
        for n in range(1, 8)
    ]
    members = tuple(Member(r.key, r.name, r.quantity, "", "binary") for r in rows)
    rows.append(
        _block(0x040005FF, V7, "status words block", members, tuple(r.layout for r in rows), "")
    )
    return rows


_E = Bcd(8, 2)
_COVER_FIELDS = tuple(
    (f"{key}.{when}", lay)
    for when in ("before", "after")
    for key, lay in (
        ("energy.active.import.total", _E),
        ("energy.active.export.total", _E),
        ("energy.reactive.q1.total", _E),
        ("energy.reactive.q2.total", _E),
        ("energy.reactive.q3.total", _E),
        ("energy.reactive.q4.total", _E),
    )
)
_COUNT = Bcd(6, integer=True)


def _event_rows(di: int, what: str, count_key: str, record: Record) -> list[DataId]:
    return [
        _instant(di, f"{what} count", count_key, "", _COUNT),
        _instant(
            di | 1,
            f"{what} record",
            f"{count_key.rsplit('.', 1)[0]}.record",
            "",
            record,
            period="record",
            di0_range=RECORDS,
        ),
    ]


def _frozen_rows() -> list[DataId]:
    rows = [
        _instant(
            0x05060001,
            "daily freeze time",
            "freeze.time",
            "",
            Stamp("YYMMDDhhmm"),
            period="daily_frozen",
            di0_range=FREEZES,
        )
    ]
    for di1, (_, prefix, what, unit, signed) in zip(
        (0x01, 0x02, 0x03, 0x04), ENERGY_2007[1:5], strict=True
    ):
        layout = Bcd(8, 2, signed=signed)
        members = _energy_members(prefix, what, unit, layout)
        rows.append(
            _block(
                0x05060001 | di1 << 8,
                V7,
                f"daily frozen {what}",
                members,
                (layout,) * 5,
                unit,
                repeat_tail=f"{prefix}.t",
                period="daily_frozen",
                di0_range=FREEZES,
            )
        )
    return rows


def _load_profile_rows() -> list[DataId]:
    rows = []
    for category, (what, fields) in CATEGORIES.items():
        for which, how in ((EARLIEST, "earliest"), (GIVEN_TIME, "from a given time"),
                           (MOST_RECENT, "most recent")):  # fmt: skip
            rows.append(
                DataId(
                    profile_di(category, which),
                    V7,
                    f"load profile {what}, {how}",
                    f"load_profile.{category}",
                    None,
                    "",
                    ProfileRecords(fields),
                    period="load_profile",
                    certainty="?",
                )
            )
    return rows


ROWS_2007: list[DataId] = [
    *_energy_rows_2007(),
    *_phase_rows(0x02010000, "voltage", "voltage", "V", Bcd(4, 1), False, V7),
    *_phase_rows(0x02020000, "current", "current", "A", Bcd(6, 3, signed=True), False, V7),
    *_phase_rows(0x02030000, "active power", "power.active", "kW", Bcd(6, 4, True), True, V7),
    *_phase_rows(0x02040000, "reactive power", "power.reactive", "kvar", Bcd(6, 4, True), True, V7),
    *_phase_rows(0x02050000, "apparent power", "power.apparent", "kVA", Bcd(6, 4, True), True, V7),
    *_phase_rows(0x02060000, "power factor", "power_factor", "", Bcd(4, 3, True), True, V7),
    _instant(0x02800001, "neutral current", "current.n", "A", Bcd(6, 3, signed=True)),
    _instant(0x02800002, "grid frequency", "frequency", "Hz", Bcd(4, 2)),
    _instant(0x02800007, "meter temperature", "temperature.meter", "Cel", Bcd(4, 1, signed=True)),
    _instant(0x04000101, "date and weekday", "meter.date", "", DateWeek()),
    _instant(0x04000102, "time", "meter.time", "", TimeOfDay()),
    # date and time in one identifier (State Grid smart-meter extension) [?]: no public source
    # at hand; meters without it refuse it, so a reader falls back to 04000101 + 04000102
    _instant(
        0x0400010C, "date, weekday and time", "meter.datetime", "", DateWeekTime(), certainty="?"
    ),
    _instant(0x04000401, "communication address", "meter.address", "", Digits(6)),
    _instant(0x04000402, "meter number", "meter.number", "", Digits(6)),
    *_status_rows(),
    *_event_rows(0x03110000, "power-down", "events.power_down.count", Record()),
    *_event_rows(0x03300D00, "meter-cover open", "events.meter_cover.count", Record(_COVER_FIELDS)),
    *_event_rows(
        0x03300E00, "terminal-cover open", "events.terminal_cover.count", Record(_COVER_FIELDS)
    ),
    *_frozen_rows(),
    _instant(0x00900100, "prepay remaining energy", "prepay.balance.energy", "kWh", Bcd(8, 2)),
    _instant(0x00900101, "prepay overdraft energy", "prepay.overdraft.energy", "kWh", Bcd(8, 2)),
    _instant(0x00900200, "prepay remaining money", "prepay.balance.money", "CNY", Bcd(8, 2)),
    _instant(0x00900201, "prepay overdraft money", "prepay.overdraft.money", "CNY", Bcd(8, 2)),
    *_load_profile_rows(),
]


# 1997 settlement periods live in DI1's high nibble: 90xx current, 94xx last month, 98xx the month
# before last (the 2007 form puts them in DI0).  [1: several implementations agree; no standard]
PERIODS_1997 = ((0x0000, "current", 0, ""), (0x0400, "settlement", 1, ", settlement period -1"),
                (0x0800, "settlement", 2, ", settlement period -2"))  # fmt: skip


def _energy_rows_1997() -> list[DataId]:
    rows: list[DataId] = []
    for base, prefix, what in (
        (0x9010, "energy.active.import", "forward active energy"),
        (0x9020, "energy.active.export", "reverse active energy"),
    ):
        for offset, period, index, suffix in PERIODS_1997:
            di = base + offset
            extra: dict[str, object] = {"period": period, "index": index}
            if period != "current":
                extra["certainty"] = "1"
            for t in range(5):
                key = f"{prefix}.total" if t == 0 else f"{prefix}.t{t}"
                name = (f"{what}, total" if t == 0 else f"{what}, tariff {t}") + suffix
                rows.append(DataId(di + t, V9, name, key, _q(key), "kWh", _E, **extra))  # type: ignore[arg-type]
            members = _energy_members(prefix, what, "kWh", _E)
            block = _block(
                di | 0xF, V9, f"{what} block", members, (_E,) * 5, "kWh", repeat_tail=f"{prefix}.t"
            )
            if period != "current":  # same key as the current block; name and period tell apart
                block = replace(block, name=block.name + suffix, **extra)  # type: ignore[arg-type]
            rows.append(block)
    return rows


def _r97(di: int, name: str, key: str, unit: str, layout: Layout, certainty: str = "V") -> DataId:
    return DataId(di, V9, name, key, _q(key), unit, layout, certainty=certainty)


ROWS_1997: list[DataId] = [
    *_energy_rows_1997(),
    *_phase_rows(0xB610, "voltage", "voltage", "V", Bcd(4), False, V9),
    *_phase_rows(0xB620, "current", "current", "A", Bcd(4, 2), False, V9),
    *_phase_rows(0xB630, "active power", "power.active", "kW", Bcd(6, 4), True, V9),
    _r97(0xB640, "reactive power, total", "power.reactive.total", "kvar", Bcd(4, 2)),
    _r97(0xB650, "power factor, total", "power_factor.total", "", Bcd(4, 3)),
    _r97(0xC010, "date and weekday", "meter.date", "", DateWeek(), "1"),
    _r97(0xC011, "time", "meter.time", "", TimeOfDay(), "1"),
    _r97(0xC032, "meter number", "meter.number", "", Digits(6), "1"),
]
