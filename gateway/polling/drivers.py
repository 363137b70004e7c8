"""The driver for a meter's protocol."""

from __future__ import annotations

from gateway.config import MeterConfig
from gateway.polling.driver import Driver


def make_driver(meter: MeterConfig, zone: str) -> Driver:
    """A DL/T 645 or Modbus driver for ``meter``."""
    if meter.protocol == "modbus":
        from gateway.polling.modbus import ModbusDriver

        return ModbusDriver(meter, zone)
    from gateway.polling.dlt645 import Dlt645Driver

    return Dlt645Driver(meter, zone)
