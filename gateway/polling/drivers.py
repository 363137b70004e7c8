"""The driver for a meter's protocol."""

from __future__ import annotations

from gateway.config import MeterConfig
from gateway.polling.driver import Driver


def make_driver(meter: MeterConfig, zone: str, *, frozen_export: bool = False) -> Driver:
    """A DL/T 645, DL/T 698.45 or Modbus driver for ``meter`` (``frozen_export``: daily
    freezes of the reverse energy too, for areas with rooftop PV)."""
    if meter.protocol == "dlt698":
        from gateway.polling.dlt698 import Dlt698Driver

        return Dlt698Driver(meter, zone, frozen_export=frozen_export)
    if meter.protocol == "modbus":
        from gateway.polling.modbus import ModbusDriver

        return ModbusDriver(meter, zone)
    from gateway.polling.dlt645 import Dlt645Driver

    return Dlt645Driver(meter, zone, frozen_export=frozen_export)
