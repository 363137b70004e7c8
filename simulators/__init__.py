"""Software meters (the slave role of the ``protocols`` codecs) on byte-timed RS-485 buses.

- ``simulators.profiles``: seeded load profiles and time-of-use tables.
- ``simulators.energy``: the lazy energy integral (no ticking loop: state is a pure function of
  clock time, profile seed, scenario changes and commands).
- ``simulators.meter``: the protocol-independent meter state and its ground truth.
- ``simulators.personalities``: meter personalities as data (one TOML file each): how a real
  meter departs from the complete one; ``simulators.firmware`` (relay timing, clock rules, busy
  window) and ``simulators.dlt645.reads`` (blocks, phases, unsupported, filler, follow-up frames)
  apply them; ``simulators.history``: settlement periods and load profile records.
- ``simulators.dlt645``, ``simulators.dlt698``, ``simulators.modbus``: the codecs' slave roles
  bound to it (``meter`` in each).
- ``simulators.bus``: a multi-drop half-duplex bus paced at the baud rate, with faults;
  ``simulators.line``: per-meter line settings and what a receiver at other settings hears.
- ``simulators.endpoints``: TCP (``socket://``) and pseudo-terminal endpoints;
  ``simulators.rfc2217``: RFC 2217 (``rfc2217://``), the client's line settings reach the bus.
- ``simulators.truth``: ground truth of what each meter answers, per identifier and quantity.
- ``simulators.fleet``: areas × buses × meters from a TOML file, ``start_fleet`` for tests.
- ``simulators.control``: the control surface (Python API and JSON over HTTP on loopback).

Exception tree::

    SimError
    ├── SimConfigError       a fleet file or a CLI option that cannot describe a fleet
    └── ControlError         a control request naming an unknown meter/bus/area or a bad value
        └── ControlUnavailable   the control endpoint could not be reached (CLI side)
"""

from simulators.errors import ControlError, ControlUnavailable, SimConfigError, SimError

__all__ = ["ControlError", "ControlUnavailable", "SimConfigError", "SimError"]
