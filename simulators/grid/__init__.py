"""Area truth: simulated transformer areas with line losses, PV, vacancy, arrears and theft.

Unlike the bus simulators (``simulators.meter``: a meter's registers answering frames), this
package simulates the *electricity* of whole transformer areas (台区) over days at a fixed step, so
the head-end's analytics can be checked against ground truth:

- ``simulators.grid.model``: the configuration and the truth per meter, area and day.
- ``simulators.grid.loads``: household load, rooftop PV and what each kind of customer does.
- ``simulators.grid.households``: household archetypes (commuter, at home, night shift, small
  shop, electric heating), opt-in with ``GridConfig.households``.
- ``simulators.grid.network``: the low-voltage network of an area — per-segment line drops and
  I²R losses, the transformer's own drop, a medium-voltage level shared by all areas — and what
  every meter registers and measures (with theft, relays and meter noise).

``simulate(GridConfig(...))`` returns a ``GridRun``: per meter its registers at every step
boundary, voltages, live and neutral currents and relay state, plus ``MeterTruth`` (true area,
mapped area, kind, stolen fraction, household archetype) and per area and day the technical loss
and stolen energy.
Everything is a pure function of the configuration (seeded), with no I/O.
"""

from simulators.grid.households import ARCHETYPES, DEFAULT_HOUSEHOLDS
from simulators.grid.model import (
    KINDS,
    THEFTS,
    AreaDay,
    GridConfig,
    GridRun,
    MeterSeries,
    MeterTruth,
)
from simulators.grid.network import simulate

__all__ = [
    "ARCHETYPES",
    "DEFAULT_HOUSEHOLDS",
    "KINDS",
    "THEFTS",
    "AreaDay",
    "GridConfig",
    "GridRun",
    "MeterSeries",
    "MeterTruth",
    "simulate",
]
