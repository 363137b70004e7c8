"""Reading meters: sweeps, the protocol drivers, meter availability, daily frozen reads, schedules.

``sweep`` runs a group (energy, events, instantaneous) over every bus at once; ``meter`` is one
meter's visit and back-off (``state``); ``driver`` is what a protocol driver is (``dlt645``,
``modbus``, chosen by ``drivers.make_driver``); ``batch`` is where a bus's results wait for their
group commit; ``frozen`` reads daily freezes and back-fills; ``schedule`` aligns jobs to slots.
"""

from gateway.polling.batch import Batch, DirectBatch
from gateway.polling.driver import Driver, Group, MeterRefused, MeterUnavailable
from gateway.polling.meter import MeterPoller, MeterRead
from gateway.polling.sweep import Poller, SweepReport

__all__ = [
    "Batch",
    "DirectBatch",
    "Driver",
    "Group",
    "MeterPoller",
    "MeterRead",
    "MeterRefused",
    "MeterUnavailable",
    "Poller",
    "SweepReport",
]
