"""Remote control of a simulated meter: authority, the relay and local prepayment.

Relay states: ``closed``; ``open`` (tripped); ``armed`` (open, "close allowed": waits for the
customer's button press).  Keep-power holds the relay closed and refuses trips.  A trip opens the
relay when the firmware says (``simulators.firmware.trip_instant``: a trip delay, or deferred
under high current); a money prepay meter trips itself at the exact instant its balance crosses
the overdraft limit, and a top-up makes it close-allowed.

``Meter`` (``simulators.meter``) inherits ``RelayControl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from simulators import firmware
from simulators.energy import EnergySource, Timeline, Vec4, sub4

if TYPE_CHECKING:
    from simulators.meter import Meter, MeterSpec


class Relay(StrEnum):
    """Relay state."""

    CLOSED = "closed"
    OPEN = "open"
    ARMED = "armed"  # open, close allowed: the customer's button press closes it


class Control(StrEnum):
    """Remote-control actions (DL/T 645 1C N1 codes in the comments)."""

    TRIP = "trip"  # 1A
    CLOSE_ALLOWED = "close_allowed"  # 1B
    CLOSE = "close"  # 1C
    ALARM = "alarm"  # 2A
    ALARM_RELEASE = "alarm_release"  # 2B
    KEEP_POWER = "keep_power"  # 3A
    KEEP_POWER_RELEASE = "keep_power_release"  # 3B


class Outcome(StrEnum):
    """What a command did."""

    OK = "ok"
    BAD_PASSWORD = "bad_password"
    UNAUTHORISED = "unauthorised"
    REFUSED = "refused"  # e.g. trip under keep-power, command past its valid-until time


@dataclass
class Prepay:
    """Local prepayment (off unless configured): money balance against tariff prices."""

    balance: float = 100.0  # yuan at ``since``
    prices: tuple[float, float, float, float] = (0.8, 0.65, 0.55, 0.35)
    alarm_below: float = 20.0
    overdraft: float = 0.0
    since: float = 0.0
    top_ups: list[tuple[float, float]] = field(default_factory=list)
    checked_to: float = 0.0


class RelayControl:
    """Commands, the relay and prepayment of ``Meter``: the attributes below are set by it."""

    spec: MeterSpec
    timeline: Timeline
    origin: float
    source: EnergySource
    keep_power: bool
    alarm: bool
    prepay: Prepay | None
    relay_log: list[tuple[float, str, str]]  # (ts, new state, why)
    pending_trip: tuple[float, float] | None  # (commanded, opens)

    def meter_time(self, ts: float) -> datetime:
        raise NotImplementedError  # Meter's

    def _supplied(self, state: dict[str, Any]) -> float:
        raise NotImplementedError  # Meter's

    def authorise(self, level: int, password: str, operator: str, need_level: int) -> Outcome:
        """Check a password (level + 6 digits) and an operator code for a command."""
        if self.spec.passwords.get(level) != password:
            return Outcome.BAD_PASSWORD
        if level > need_level:
            return Outcome.UNAUTHORISED
        if self.spec.operators and operator not in self.spec.operators:
            return Outcome.UNAUTHORISED
        return Outcome.OK

    def _set_relay(self, ts: float, relay: Relay, why: str) -> None:
        if self.timeline.at(ts)["relay"] != relay:
            self.timeline.set(ts, relay=relay)
            self.relay_log.append((ts, relay.value, why))

    def control(self, ts: float, action: Control, valid_until: datetime | None = None) -> Outcome:
        """Apply a remote-control action at ``ts`` (valid-until in meter local time)."""
        self.settle(ts)
        if valid_until is not None and self.meter_time(ts) > valid_until:
            return Outcome.REFUSED
        relay = self.timeline.at(ts)["relay"]
        if action in (Control.CLOSE_ALLOWED, Control.CLOSE, Control.KEEP_POWER):
            self._cancel_pending_trip(ts)
        if action is Control.TRIP:
            if self.keep_power:
                return Outcome.REFUSED
            if self.pending_trip is not None and self.pending_trip[1] > ts:
                return Outcome.OK  # already commanded: the relay opens as first scheduled
            opens = firmware.trip_instant(cast("Meter", self), ts)
            self.pending_trip = (ts, opens)
            self._set_relay(opens, Relay.OPEN, "remote trip")
        elif action is Control.CLOSE_ALLOWED:
            if relay != Relay.CLOSED:
                self._set_relay(ts, Relay.ARMED, "close allowed")
        elif action is Control.CLOSE:
            self._set_relay(ts, Relay.CLOSED, "remote close")
        elif action is Control.ALARM:
            self.alarm = True
        elif action is Control.ALARM_RELEASE:
            self.alarm = False
        elif action is Control.KEEP_POWER:
            self.keep_power = True
            self._set_relay(ts, Relay.CLOSED, "keep power")
        elif action is Control.KEEP_POWER_RELEASE:
            self.keep_power = False
        return Outcome.OK

    def _cancel_pending_trip(self, ts: float) -> None:
        if self.pending_trip is None or self.pending_trip[1] <= ts:
            return
        opens = self.pending_trip[1]
        self.timeline.cancel(opens, "relay")
        self.relay_log = [entry for entry in self.relay_log if entry[0] != opens]
        self.pending_trip = None

    def trip_pending(self, ts: float) -> bool:
        """Whether a trip was commanded by ``ts`` and the relay has not opened yet."""
        pending = self.pending_trip
        return pending is not None and pending[0] <= ts < pending[1]

    def press_button(self, ts: float) -> bool:
        """The customer presses the meter's button: closes an armed relay."""
        self.settle(ts)
        if self.timeline.at(ts)["relay"] == Relay.ARMED:
            self._set_relay(ts, Relay.CLOSED, "button")
            return True
        return False

    # -- local prepayment ---------------------------------------------------------------------
    def balance(self, ts: float) -> float | None:
        """Local prepay money balance at ``ts`` (None without prepay)."""
        pp = self.prepay
        if pp is None:
            return None
        spent_kwh = sub4(self._registered_raw(ts), self._registered_raw(pp.since))
        spent = sum(k * p for k, p in zip(spent_kwh, pp.prices, strict=True))
        return pp.balance + sum(a for when, a in pp.top_ups if when <= ts) - spent

    def _registered_raw(self, ts: float) -> Vec4:
        return self.timeline.integrate(
            self.source.cumulative,
            lambda s: self._supplied(s) * s["factor"] * (not s["reversed"]),
            self.origin,
            ts,
        )

    def top_up(self, ts: float, amount: float) -> None:
        """Add money; a relay tripped for credit becomes close-allowed (button closes it)."""
        if self.prepay is None:
            return
        self.settle(ts)
        self.prepay.top_ups.append((ts, amount))
        tripped_for_credit = self.relay_log and self.relay_log[-1][2] == "prepay exhausted"
        if tripped_for_credit and (self.balance(ts) or 0) > -self.prepay.overdraft:
            self._set_relay(ts, Relay.ARMED, "top-up")

    def settle(self, ts: float) -> None:
        """Apply what the meter itself decides (prepay trip at the exact crossing) up to ``ts``."""
        pp = self.prepay
        if pp is None or ts <= pp.checked_to:
            return
        lo = pp.checked_to
        pp.checked_to = ts
        if self.keep_power or self.timeline.at(lo)["relay"] != Relay.CLOSED:
            return
        limit = -pp.overdraft
        balance = self.balance(ts)
        if balance is None or balance > limit:
            return
        hi = ts
        for _ in range(60):  # registered energy is monotone: bisect the crossing instant
            mid = (lo + hi) / 2
            if (self.balance(mid) or 0.0) > limit:
                lo = mid
            else:
                hi = mid
        self._set_relay(hi, Relay.OPEN, "prepay exhausted")
