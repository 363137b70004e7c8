"""Collection quality: collection success (采集成功率), gateway online rate, reading checks.

For freeze date D (the 00:00 freeze on D), a meter in force that day is *due*; it is *obtained*
when its daily frozen energy register for D is stored, and *collected* when it was read within
the cut-off (``[analytics] collection_cutoff_hours``, default 24 h) of the freeze and not flagged
``backfilled`` (补抄).  The collection success rate (采集成功率) is collected / due; the rate after
back-fill is obtained / due.  This is not the actual-reading rate (实抄率) of billing, which
counts readings used for bills.  Rates are given per area and per gateway.  The online rate
is the share of the day a gateway's session history shows it connected (unknown when there is
no history at all).

Reading checks on a meter's frozen registers (one meter id: a replacement starts a new series,
so it never looks backwards): ``backwards``, ``jump`` (more than the meter can register in the
elapsed time), ``stopped`` (unchanged for ``stopped_days`` while its area was supplied and the
meter itself was: a day its relay was reported open is a supply state — an arrears
disconnection — and a day whose current readings all stayed below ``LOADED_A`` is a home without
load — vacant — so neither counts; a stopped meter is one whose register stands still while it
measures current, or, without current readings, whose register stands still: then the flag says
``load: unknown``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from headend.analytics.model import boundary

DEFAULT_CUTOFF = timedelta(hours=24)
LOADED_A = Decimal("0.2")  # a current at or above this is load the register must follow
BACKFILLED = "backfilled"
PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Due:
    """A meter due for a daily freeze on a date."""

    meter: str
    area: str
    gateway: str | None
    role: str = "customer"


@dataclass(frozen=True)
class FrozenFact:
    """A stored daily frozen energy register."""

    meter: str
    day: date
    value: Decimal
    gateway_time: datetime
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SessionFact:
    """A gateway going online or offline."""

    gateway: str
    at: datetime
    state: str  # online | offline


@dataclass(frozen=True)
class Rate:
    """Collection of one freeze date for one area or gateway."""

    scope: str  # area | gateway
    key: str
    day: date
    due: int
    collected: int  # within the cut-off, not back-filled
    obtained: int
    online_rate: Decimal | None = None
    missing: tuple[str, ...] = ()

    @property
    def success_rate(self) -> Decimal | None:
        """采集成功率: collected / due."""
        return (Decimal(self.collected) / self.due).quantize(PLACES) if self.due else None

    @property
    def rate_obtained(self) -> Decimal | None:
        return (Decimal(self.obtained) / self.due).quantize(PLACES) if self.due else None


def collected_in_time(fact: FrozenFact, zone: ZoneInfo, cutoff: timedelta = DEFAULT_CUTOFF) -> bool:
    """Whether ``fact`` was read within ``cutoff`` of its freeze (and not back-filled)."""
    if BACKFILLED in fact.flags:
        return False
    return fact.gateway_time - boundary(fact.day, zone) < cutoff


def collection_rates(
    day: date,
    due: Iterable[Due],
    frozen: Mapping[str, FrozenFact],
    zone: ZoneInfo,
    *,
    online: Mapping[str, Decimal | None] | None = None,
    cutoff: timedelta = DEFAULT_CUTOFF,
) -> list[Rate]:
    """Rates of freeze date ``day`` per area and per gateway (sorted by scope and key)."""
    groups: dict[tuple[str, str], list[Due]] = {}
    for d in due:
        groups.setdefault(("area", d.area), []).append(d)
        if d.gateway:
            groups.setdefault(("gateway", d.gateway), []).append(d)
    out = []
    for (scope, key), members in sorted(groups.items()):
        got = [frozen[m.meter] for m in members if m.meter in frozen]
        first = sum(1 for f in got if collected_in_time(f, zone, cutoff))
        missing = tuple(sorted(m.meter for m in members if m.meter not in frozen))
        rate_online = (online or {}).get(key) if scope == "gateway" else None
        out.append(Rate(scope, key, day, len(members), first, len(got), rate_online, missing))
    return out


def online_rate(sessions: Sequence[SessionFact], start: datetime, end: datetime) -> Decimal | None:
    """Share of ``[start, end)`` one gateway was online (None: no history before ``end``)."""
    ordered = sorted((s for s in sessions if s.at < end), key=lambda s: s.at)
    if not ordered:
        return None
    state: str | None = None
    for s in ordered:
        if s.at <= start:
            state = s.state
    online = timedelta(0)
    cursor = start
    for s in ordered:
        if s.at <= start:
            continue
        if state == "online":
            online += s.at - cursor
        cursor, state = s.at, s.state
    if state == "online":
        online += end - cursor
    return (Decimal(online.total_seconds()) / Decimal((end - start).total_seconds())).quantize(
        PLACES
    )


@dataclass(frozen=True)
class QualityFlag:
    """A data-quality finding on one meter's frozen register (not a bill)."""

    meter: str
    day: date
    kind: str  # backwards | jump | stopped
    detail: Mapping[str, str] = field(default_factory=dict)


def reading_checks(
    meter: str,
    values: Mapping[date, Decimal],
    *,
    max_kwh_per_day: Decimal,
    supplied: Mapping[date, bool] | None = None,
    stopped_days: int = 3,
    relay_open: Iterable[date] = (),
    peak_current: Mapping[date, Decimal] | None = None,
) -> list[QualityFlag]:
    """Backwards, impossible-jump and stopped checks over a meter's frozen registers.

    ``relay_open``: days the meter reported its relay open; ``peak_current``: per day the highest
    current it measured (days without current readings absent)."""
    out: list[QualityFlag] = []
    days = sorted(values)
    off = set(relay_open)
    peaks = peak_current or {}
    still = 0
    loads: list[Decimal] = []
    for prev, day in pairwise(days):
        delta = values[day] - values[prev]
        elapsed = (day - prev).days
        if delta < 0:
            out.append(
                QualityFlag(
                    meter, day, "backwards", {"from": str(values[prev]), "to": str(values[day])}
                )
            )
        elif delta > max_kwh_per_day * elapsed:
            out.append(
                QualityFlag(
                    meter,
                    day,
                    "jump",
                    {"delta": str(delta), "limit": str(max_kwh_per_day * elapsed)},
                )
            )
        no_load = peaks.get(prev, LOADED_A) < LOADED_A  # current read, and all below
        if (
            delta == 0
            and (supplied is None or supplied.get(prev, False))
            and prev not in off
            and not no_load
        ):
            still += elapsed
            if prev in peaks:
                loads.append(peaks[prev])
            if still == stopped_days or (still > stopped_days and still - elapsed < stopped_days):
                load = f"up to {max(loads)} A" if loads else "unknown"
                out.append(QualityFlag(meter, day, "stopped", {"days": str(still), "load": load}))
        else:
            still = 0
            loads = []
    return out


@dataclass(frozen=True)
class Failing:
    """A meter that keeps failing to deliver its daily freeze."""

    meter: str
    area: str
    missing_days: int
    window_days: int
    consecutive: int  # missing days in a row up to the last day
    last_obtained: date | None


def failing_meters(
    due: Mapping[str, Due],
    obtained: Mapping[str, set[date]],
    last: date,
    *,
    window: int = 7,
    min_missing: int = 2,
    since: Mapping[str, date] | None = None,
) -> list[Failing]:
    """Meters missing at least ``min_missing`` freezes in the ``window`` days up to ``last``.

    ``since`` gives a meter's first due freeze (a meter installed later is not due before).
    """
    out = []
    for meter, d in sorted(due.items()):
        first = (since or {}).get(meter)
        span = [last - timedelta(days=i) for i in range(window)]
        span = [day for day in span if first is None or day >= first]
        got = obtained.get(meter, set())
        missing = [day for day in span if day not in got]
        if len(missing) < min_missing:
            continue
        consecutive = 0
        for day in span:
            if day in got:
                break
            consecutive += 1
        last_ok = max(got) if got else None
        out.append(Failing(meter, d.area, len(missing), window, consecutive, last_ok))
    out.sort(key=lambda f: (-f.consecutive, -f.missing_days, f.meter))
    return out
