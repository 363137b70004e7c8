"""DL/T 698.45 meters in the simulator: ``meter`` (the codec's server role bound to meter state)
and ``records`` (GET Record: the daily freeze and the event records)."""
