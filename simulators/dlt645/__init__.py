"""DL/T 645 meters in the simulator: ``meter`` (the codec's slave role bound to meter state) and
``reads`` (how a meter answers a read, by its personality)."""
