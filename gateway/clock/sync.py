"""Meter time-sync policy (pure): when a broadcast time sync may be sent, and when not.

Rules, checked in this order for one meter (``drift`` = meter clock − gateway clock)::

    gateway clock unsynced            → Skip(clock_unsynced)     never spread a wrong time
    |drift| ≥ 5 min                   → SiteVisit                broadcast cannot fix it; the
                                                                 event is raised by the
                                                                 EventDetector (level site_visit)
    |drift| < min_drift (5 s)         → Skip(in_tolerance)
    synced already this local day     → Skip(already_today)      at most once a day
    gateway or meter time within 10 min
    of a whole hour (midnight incl.)  → Skip(freeze_window)      meters freeze on the hour
    otherwise                         → Broadcast

Both the gateway's time and the meter's own time (gateway + drift) must be clear of the window:
a meter four minutes slow must not be stepped across its own 00:00 freeze (the window is
``protocols.freeze_window``, shared with the head-end's clock sets).  A ``Skip`` carries
``retry_at``, the earliest local time at which the answer may change.

DL/T 645 time sync (08H) is a broadcast to 99…99: every meter on the bus gets it.
``plan_bus_time_sync`` folds the per-meter answers: broadcast when at least one meter needs it and
the bus-wide rules allow; meters that need a site visit are listed (they receive the broadcast too;
meters refuse large steps themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum

from protocols.freeze_window import FREEZE_MARGIN, freeze_retry_at, leave_window

MAX_BROADCAST_DRIFT_S = 300.0
DEFAULT_MIN_DRIFT_S = 5.0
SYNC_FRAME_BYTES = 4 + 12 + 6  # preamble + header/trailer + 6 data bytes of a 08H frame


class SkipReason(StrEnum):
    """Why no broadcast is sent now."""

    CLOCK_UNSYNCED = "clock_unsynced"
    IN_TOLERANCE = "in_tolerance"
    ALREADY_TODAY = "already_today"
    FREEZE_WINDOW = "freeze_window"
    NO_METER_NEEDS_IT = "no_meter_needs_it"


@dataclass(frozen=True)
class Broadcast:
    """Send a broadcast time sync now."""

    drift_s: float


@dataclass(frozen=True)
class SiteVisit:
    """Drift too large for a broadcast: someone must set the meter on site."""

    drift_s: float
    limit_s: float = MAX_BROADCAST_DRIFT_S


@dataclass(frozen=True)
class Skip:
    """No broadcast now (``retry_at``: earliest local time the answer may change)."""

    reason: SkipReason
    retry_at: datetime | None = None


Decision = Broadcast | SiteVisit | Skip


@dataclass(frozen=True)
class TimeSyncPolicy:
    """The limits (defaults are the issue's: 5 minutes, once a day, 10 minutes off the hour)."""

    max_drift_s: float = MAX_BROADCAST_DRIFT_S
    min_drift_s: float = DEFAULT_MIN_DRIFT_S
    margin: timedelta = FREEZE_MARGIN

    def __post_init__(self) -> None:
        if not 0 <= self.min_drift_s < self.max_drift_s:
            raise ValueError("need 0 <= min_drift_s < max_drift_s")
        if not timedelta(0) <= self.margin < timedelta(minutes=30):
            raise ValueError("the freeze margin must be under 30 minutes")


def plan_time_sync(
    meter_drift_seconds: float,
    now_local: datetime,
    last_sync_local: datetime | None,
    *,
    gateway_synced: bool = True,
    policy: TimeSyncPolicy = TimeSyncPolicy(),
) -> Decision:
    """The decision for one meter (times are gateway time in the meters' zone, naive or aware)."""
    if not gateway_synced:
        return Skip(SkipReason.CLOCK_UNSYNCED)
    size = abs(meter_drift_seconds)
    if size >= policy.max_drift_s:
        return SiteVisit(meter_drift_seconds, policy.max_drift_s)
    if size < policy.min_drift_s:
        return Skip(SkipReason.IN_TOLERANCE)
    return _bus_rules(meter_drift_seconds, now_local, last_sync_local, policy)


def _bus_rules(
    drift_s: float, now_local: datetime, last_sync_local: datetime | None, policy: TimeSyncPolicy
) -> Decision:
    if last_sync_local is not None and last_sync_local.date() >= now_local.date():
        tomorrow = datetime.combine(now_local.date() + timedelta(days=1), time(), now_local.tzinfo)
        return Skip(SkipReason.ALREADY_TODAY, leave_window(tomorrow, policy.margin))
    retry = freeze_retry_at(now_local, timedelta(seconds=drift_s), policy.margin)
    if retry is not None:
        return Skip(SkipReason.FREEZE_WINDOW, retry)
    return Broadcast(drift_s)


@dataclass(frozen=True)
class BusPlan:
    """What to do on one bus: broadcast or not, and which meters need a site visit."""

    broadcast: bool
    skip: Skip | None = None
    site_visits: dict[str, float] = field(default_factory=dict)  # meter → drift
    needing: tuple[str, ...] = ()  # meters whose drift the broadcast fixes


def plan_bus_time_sync(
    drifts: Mapping[str, float],
    now_local: datetime,
    last_sync_local: datetime | None,
    *,
    gateway_synced: bool = True,
    policy: TimeSyncPolicy = TimeSyncPolicy(),
) -> BusPlan:
    """Fold per-meter decisions into one broadcast decision for a bus."""
    if not gateway_synced:
        return BusPlan(False, Skip(SkipReason.CLOCK_UNSYNCED))
    site: dict[str, float] = {}
    needing: list[str] = []
    for meter, drift in drifts.items():
        decision = plan_time_sync(drift, now_local, None, policy=policy)
        if isinstance(decision, SiteVisit):
            site[meter] = drift
        elif not (isinstance(decision, Skip) and decision.reason is SkipReason.IN_TOLERANCE):
            needing.append(meter)
    if not needing:
        return BusPlan(False, Skip(SkipReason.NO_METER_NEEDS_IT), site)
    # the window must be clear for the meter whose clock is furthest either way
    worst = [max(drifts[m] for m in needing), min(drifts[m] for m in needing)]
    for drift in worst:
        decision = _bus_rules(drift, now_local, last_sync_local, policy)
        if isinstance(decision, Skip):
            return BusPlan(False, decision, site, tuple(needing))
    return BusPlan(True, None, site, tuple(needing))


def broadcast_time(
    now_local: datetime, baud: int, bits_per_byte: int = 11, frame_bytes: int = SYNC_FRAME_BYTES
) -> datetime:
    """The time to put in the frame: now plus the frame's own time on the wire."""
    if baud <= 0:
        raise ValueError("baud must be positive")
    return now_local + timedelta(seconds=frame_bytes * bits_per_byte / baud)
