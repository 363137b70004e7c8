"""Modbus RTU meters in the simulator: ``meter`` (the codec's slave role bound to meter state)."""
