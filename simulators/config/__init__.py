"""The fleet file (``taiqu sim serve --config fleet.toml``): areas × buses × meters with scenarios.

```toml
clock = { start = 2026-03-01T00:00:00+08:00, factor = 60 }   # or "real" (the default)
zone = "Asia/Shanghai"
control = "127.0.0.1:8765"          # JSON-over-HTTP control interface ("" = off; port 0 = any)
tou = { "00:00" = 4, "08:00" = 3, "10:00" = 2, "12:00" = 3, "17:00" = 2, "19:00" = 1 }

[[areas]]
name = "area1"
gateway_id = "gw-0001"
technical_loss = 0.04               # area total = Σ true customer loads × (1 + loss)

[[buses]]
name = "bus1"
area = "area1"
listen = "tcp://127.0.0.1:7001"     # or "pty"
baud = 2400
parity = "E"
pace = true                         # false: no wire time (accelerated clocks)
faults = { noise = 3 }
rfc2217 = "127.0.0.1:0"             # also served over RFC 2217 ("" = off)
tap = ""                            # "127.0.0.1:0": a sniffer's copy of all traffic

[[meters]]
bus = "bus1"
protocol = "dlt645-2007"            # dlt645-2007 | dlt645-1997 | dlt698 | modbus
address = "202611240001"            # Modbus: the unit id, "7"
count = 20                          # 20 meters, consecutive addresses and seeds
profile = "residential"             # residential | commercial | flat
mean_kw = 0.8
seed = 1
faults = { drop = 0.1 }
scenarios = [{ kind = "bypass", at = 2026-03-01T12:00:00+08:00, fraction = 0.3 }]

[[meters]]
bus = "bus1"
address = "202611249999"
role = "area_total"

[[meters]]
bus = "bus1"
address = "199700000001"
personality = "dlt645-1997"         # simulators/personalities/*.toml; sets protocol and line
personality_overrides = { busy_after_midnight_s = 30 }
line = "1200 8E1"                   # the meter's own serial settings (default: personality, bus)

[esam]                              # the software ESAM of meters with esam = true (laboratory)
key_file = "esam-lab.key"           # the master key the head-end's laboratory service uses
window_s = 300                      # authentication validity; max_failures = 15 a day

[[meters]]
bus = "bus1"
address = "202611240100"
esam = true                         # a cost-control meter: plaintext control refused
```
The ``[[meters]]`` rows and scenario kinds are ``simulators.config.meters``; the whole file, its
loading and ``quick_config`` are ``simulators.config.fleet``.
"""

from simulators.config.fleet import (
    AreaModel,
    BusModel,
    EsamModel,
    FleetConfig,
    load_config,
    parse_config,
    quick_config,
)
from simulators.config.meters import (
    MODBUS_MODELS,
    FaultsModel,
    MeterModel,
    PrepayModel,
    Protocol,
    ScenarioModel,
)

__all__ = [
    "MODBUS_MODELS",
    "AreaModel",
    "BusModel",
    "EsamModel",
    "FaultsModel",
    "FleetConfig",
    "MeterModel",
    "PrepayModel",
    "Protocol",
    "ScenarioModel",
    "load_config",
    "parse_config",
    "quick_config",
]
