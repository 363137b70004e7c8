"""The control surface of a running fleet, and its ground truth.

Every method takes and returns plain JSON values, so the HTTP interface (``control_http``) and
the CLI (``taiqu sim ctl``) call exactly these; in-process tests call them directly.  Times are
ISO 8601 strings with a UTC offset (or ``None`` = now on the fleet clock).  Meters are named by
id (the DL/T 645 address, or ``bus:unit`` for Modbus); fault targets are a meter id or a bus name.

Ground truth: *true* energy is what the customer's load consumed (before bypass, reversal or a
stopped meter distort it); *registered* energy is what the meter shows.  An area's supply is
Σ true customer energy × (1 + technical loss), which its area total meter registers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulators.errors import ControlError
from simulators.faults import NO_FAULTS
from simulators.meter import Control, Cover, Meter, Relay, total

if TYPE_CHECKING:
    from simulators.fleet import Fleet

METHODS = (
    "now",
    "meters",
    "faults",
    "set_faults",
    "clear_faults",
    "power",
    "cover",
    "scenario",
    "press_button",
    "relay",
    "esam",
    "drift",
    "top_up",
    "truth_meter",
    "truth_area",
    "events",
    "traffic",
    "personalities",
    "readable",
    "reads",
    "line",
    "syncs",
)


def _iso(ts: float | None, fleet: Fleet) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, fleet.clock.now().tzinfo).isoformat()


class FleetControl:
    """Faults, scenarios, the customer's button and ground-truth queries for one fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def _ts(self, when: str | float | None) -> float:
        if when is None or when == "":
            return self.fleet.clock.now().timestamp()
        if isinstance(when, int | float):
            return float(when)
        try:
            stamp = datetime.fromisoformat(when)
        except ValueError:
            raise ControlError(f"{when!r} is not an ISO 8601 time") from None
        if stamp.tzinfo is None:
            raise ControlError(f"{when!r} needs a UTC offset, e.g. +08:00")
        return stamp.timestamp()

    def _meter(self, meter: str) -> Meter:
        return self.fleet.meter(str(meter))

    # -- information --------------------------------------------------------------------------
    def now(self) -> dict[str, Any]:
        """The fleet clock's time, and the endpoints."""
        return {"now": self.fleet.clock.now().isoformat(), "endpoints": dict(self.fleet.endpoints)}

    def meters(self) -> list[dict[str, Any]]:
        """Every meter with its bus, area, protocol and endpoint."""
        out = []
        for ident, m in self.fleet.meters.items():
            bus = self.fleet.meter_bus[ident]
            out.append(
                {
                    "id": ident,
                    "address": m.address,
                    "protocol": m.spec.protocol,
                    "model": m.spec.model,
                    "role": m.spec.role,
                    "bus": bus,
                    "area": self.fleet.meter_area[ident],
                    "endpoint": self.fleet.endpoints.get(bus, ""),
                    "rfc2217": self.fleet.rfc2217.get(bus, ""),
                    "personality": m.spec.personality.name,
                    "line": str(self.fleet.meter_line.get(ident) or self.fleet.buses[bus].line),
                    "esam": ident in self.fleet.esams,
                }
            )
        return out

    # -- faults -------------------------------------------------------------------------------
    def faults(self, target: str) -> dict[str, Any]:
        """The faults set on a bus or a meter."""
        if target in self.fleet.buses:
            return self.fleet.buses[target].faults.as_dict()
        meter = self._meter(target)
        return self.fleet.bus_of(target).meter_faults.get(meter.address, NO_FAULTS).as_dict()

    def set_faults(self, target: str, **changes: Any) -> dict[str, Any]:
        """Switch faults on a bus or a meter (``drop=0.3``, ``silent=True`` …)."""
        if target in self.fleet.buses:
            bus = self.fleet.buses[target]
            bus.faults = bus.faults.updated(changes)
            return bus.faults.as_dict()
        meter = self._meter(target)
        bus = self.fleet.bus_of(target)
        current = bus.meter_faults.get(meter.address, NO_FAULTS).updated(changes)
        bus.meter_faults[meter.address] = current
        return current.as_dict()

    def clear_faults(self, target: str) -> dict[str, Any]:
        """Switch every fault of a bus or a meter off."""
        if target in self.fleet.buses:
            self.fleet.buses[target].faults = NO_FAULTS
        else:
            meter = self._meter(target)
            self.fleet.bus_of(target).meter_faults.pop(meter.address, None)
        return NO_FAULTS.as_dict()

    # -- scenarios and the customer's side ----------------------------------------------------
    def power(self, meter: str, on: bool, at: str | None = None) -> dict[str, Any]:
        """Power a meter (and its customer's supply) down or up."""
        self._meter(meter).set_power(self._ts(at), bool(on))
        return {"meter": meter, "powered": bool(on)}

    def cover(
        self, meter: str, which: str = "meter", open: bool = True, at: str | None = None
    ) -> dict[str, Any]:
        """Open or close the meter cover (``which="meter"``) or terminal cover (``"terminal"``)."""
        cover = {"meter": Cover.METER, "terminal": Cover.TERMINAL}.get(which)
        if cover is None:
            raise ControlError("cover 'which' must be 'meter' or 'terminal'")
        m, ts = self._meter(meter), self._ts(at)
        if open:
            m.open_cover(cover, ts)
        elif not m.close_cover(cover, ts):
            raise ControlError(f"{meter}: the {which} cover is not open")
        return {"meter": meter, "cover": which, "open": bool(open)}

    def scenario(
        self, meter: str, kind: str, at: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Apply a scenario (fleet-file kinds, or ``normal`` to undo reverse/stopped/bypass)."""
        from simulators.config import ScenarioModel

        m = self._meter(meter)
        ts = self._ts(at)
        if kind == "normal":
            m.schedule(ts, reversed=False, factor=1.0, neutral_bypass=False)
            return {"meter": meter, "kind": kind}
        try:
            model = ScenarioModel(kind=kind, after_s=ts - self.fleet.started_at, **params)
        except ValueError as exc:
            raise ControlError(f"bad scenario: {exc}") from None
        new = self.fleet.apply_scenario(m, model)
        if new is not None:
            raise ControlError("replacement is set in the fleet file, not live")
        return {"meter": meter, "kind": kind, "at": _iso(ts, self.fleet)}

    def press_button(self, meter: str) -> dict[str, Any]:
        """The customer presses the meter's button (closes a close-allowed relay)."""
        m = self._meter(meter)
        closed = m.press_button(self._ts(None))
        return {"meter": meter, "closed": closed, "relay": m.relay(self._ts(None)).value}

    def relay(self, meter: str, action: str | None = None) -> dict[str, Any]:
        """Read the relay, or act on it locally (``trip``, ``close`` …, bypassing the wire)."""
        m, ts = self._meter(meter), self._ts(None)
        if action:
            try:
                outcome = m.control(ts, Control(action))
            except ValueError:
                raise ControlError(f"unknown relay action {action!r}") from None
            if outcome.value != "ok":
                raise ControlError(f"{meter}: {action} {outcome.value}")
        pending = m.pending_trip if m.trip_pending(ts) else None
        return {
            "meter": meter,
            "relay": m.relay(ts).value,
            "keep_power": m.keep_power,
            "trip_pending": pending is not None,
            "trip_opens_at": _iso(pending[1], self.fleet) if pending else None,
        }

    def esam(self, meter: str) -> dict[str, Any]:
        """A meter's ESAM ground truth: every secured request, accepted or refused, and why."""
        self._meter(meter)
        esam = self.fleet.esams.get(meter)
        if esam is None:
            raise ControlError(f"{meter} has no ESAM (esam = true in the fleet file)")
        return {
            "meter": meter,
            "session_open": esam.session_open(self._ts(None)),
            "log": [
                {"at": _iso(e.ts, self.fleet), "kind": e.kind, "accepted": e.accepted,
                 "reason": e.reason, **{k: str(v) for k, v in e.detail.items()}}
                for e in esam.log
            ],
        }  # fmt: skip

    def drift(self, meter: str, ppm: float = 0.0, offset_s: float = 0.0) -> dict[str, Any]:
        """Make a meter's clock drift (ppm) and/or jump (seconds) from now."""
        m, ts = self._meter(meter), self._ts(None)
        shown = m.meter_time(ts)
        m.set_time(ts, shown)
        m.drift_ppm = float(ppm)
        m.clock_offset += float(offset_s)
        return {"meter": meter, "meter_time": m.meter_time(ts).isoformat()}

    def top_up(self, meter: str, amount: float) -> dict[str, Any]:
        """Add money to a local prepay meter."""
        m, ts = self._meter(meter), self._ts(None)
        if m.prepay is None:
            raise ControlError(f"{meter} has no local prepay")
        m.top_up(ts, float(amount))
        return {"meter": meter, "balance": m.balance(ts), "relay": m.relay(ts).value}

    # -- ground truth -------------------------------------------------------------------------
    def truth_meter(
        self, meter: str, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """True and registered energy of one meter over ``[start, end]`` and its state at end."""
        m = self._meter(meter)
        t1 = self._ts(end)
        t0 = self._ts(start) if start else m.origin
        true = m.true_kwh(t0, t1)
        imp0, exp0 = m.registered(t0)
        imp1, exp1 = m.registered(t1)
        return {
            "meter": meter,
            "start": _iso(t0, self.fleet),
            "end": _iso(t1, self.fleet),
            "true_kwh": total(true),
            "true_kwh_tariffs": list(true),
            "registered_import_kwh": total(imp1) - total(imp0),
            "registered_export_kwh": total(exp1) - total(exp0),
            "import_register_start": total(imp0),
            "import_register_end": total(imp1),
            "import_tariffs_end": list(imp1),
            "export_register_end": total(exp1),
            "relay": m.relay(t1).value,
            "keep_power": m.keep_power,
            "installed": m.installed(t1),
            "powered": bool(m.state(t1)["powered"]),
            "balance": m.balance(t1),
            "meter_time": m.meter_time(t1).isoformat(),
        }

    def truth_area(
        self, area: str, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """An area's true customer energy, its supply (area total) and the line loss."""
        a = self.fleet.areas.get(area)
        if a is None:
            raise ControlError(f"unknown area {area!r}")
        t1 = self._ts(end)
        t0 = self._ts(start) if start else self.fleet.started_at
        customers_true = sum(total(m.true_kwh(t0, t1)) for m in a.customers)
        registered = sum(
            total(m.registered(t1)[0]) - total(m.registered(t0)[0]) for m in a.customers
        )
        supply = customers_true * (1 + a.loss)
        out: dict[str, Any] = {
            "area": area,
            "start": _iso(t0, self.fleet),
            "end": _iso(t1, self.fleet),
            "technical_loss_ratio": a.loss,
            "customers_true_kwh": customers_true,
            "customers_registered_kwh": registered,
            "supply_kwh": supply,
            "technical_loss_kwh": supply - customers_true,
            "apparent_loss_kwh": supply - registered,
            "customers": [m.id for m in a.customers],
            "total_meter": a.total_meter.id if a.total_meter else None,
        }
        if a.total_meter is not None:
            tm = a.total_meter
            out["total_meter_kwh"] = total(tm.registered(t1)[0]) - total(tm.registered(t0)[0])
        return out

    def events(self, meter: str) -> dict[str, Any]:
        """Events the meter has raised so far (covers, power-downs, relay changes)."""
        m, ts = self._meter(meter), self._ts(None)
        covers = {
            c.value: [
                {"start": _iso(r.start, self.fleet), "end": _iso(r.end, self.fleet)}
                for r in m.cover_records(c, ts)
            ]
            for c in Cover
        }
        downs = [
            {"start": _iso(s, self.fleet), "end": _iso(e, self.fleet)} for s, e in m.power_downs(ts)
        ]
        relay = [
            {"at": _iso(t, self.fleet), "relay": r, "why": why}
            for t, r, why in m.relay_log
            if t <= ts
        ]
        return {"meter": meter, **covers, "power_down": downs, "relay": relay}

    def traffic(self, target: str) -> dict[str, Any]:
        """Bytes and frames exchanged on a bus or with one meter."""
        if target in self.fleet.buses:
            return {"bus": target, **self.fleet.buses[target].traffic.as_dict()}
        m = self._meter(target)
        return {"meter": target, **self.fleet.bus_of(target).traffic_of(m.address).as_dict()}

    # -- the meter zoo -------------------------------------------------------------------------
    def personalities(self) -> list[dict[str, Any]]:
        """Every shipped meter personality (name, protocol, line settings, description)."""
        from simulators.personalities import describe

        return describe()

    def readable(self, meter: str, at: str | None = None) -> dict[str, Any]:
        """Ground truth: what the meter answers per identifier and quantity (see ``truth``)."""
        from simulators.truth import readable

        return readable(self.fleet, str(meter), self._ts(at))

    def reads(self, meter: str) -> dict[str, Any]:
        """What the meter actually answered so far: identifier → outcome → count."""
        m = self._meter(meter)
        return {"meter": meter, "reads": {di: dict(c) for di, c in m.reads.items()}}

    def line(self, bus: str) -> dict[str, Any]:
        """A bus's settings, the master's current ones (RFC 2217) and each meter's own."""
        b = self.fleet.buses.get(str(bus))
        if b is None:
            raise ControlError(f"unknown bus {bus!r}")
        meters = {
            ident: str(self.fleet.meter_line.get(ident) or b.line)
            for ident, name in self.fleet.meter_bus.items()
            if name == bus
        }
        return {
            "bus": bus,
            "line": str(b.line),
            "master": str(b.master_line),
            "garbled_bytes": b.garbled_bytes,
            "rfc2217": self.fleet.rfc2217.get(str(bus), ""),
            "meters": meters,
        }

    def syncs(self, meter: str) -> dict[str, Any]:
        """Broadcast time syncs the meter received and what it did with each."""
        m = self._meter(meter)
        return {
            "meter": meter,
            "syncs": [
                {"at": _iso(ts, self.fleet), "meter_day": day.isoformat(), "outcome": outcome}
                for ts, day, outcome in m.sync_log
            ],
            "meter_time": m.meter_time(self._ts(None)).isoformat(),
        }

    def call(self, method: str, args: dict[str, Any]) -> Any:
        """Dispatch a named method with keyword arguments (the HTTP and CLI entry point)."""
        if method not in METHODS:
            raise ControlError(f"unknown control method {method!r}; known: {', '.join(METHODS)}")
        # names arrive as JSON numbers from query strings and the CLI ("202611240001" → int)
        args = {
            k: str(v) if k in ("meter", "target", "area", "bus") else v for k, v in args.items()
        }
        try:
            return getattr(self, method)(**args)
        except TypeError as exc:
            raise ControlError(f"{method}: {exc}") from None


__all__ = ["METHODS", "FleetControl", "Relay"]
