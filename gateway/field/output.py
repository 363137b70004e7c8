"""What ``taiqu field search`` writes: gateway.toml ``[[meters]]`` rows and the archive CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from gateway.field.search import FoundMeter
from protocols.archive import COLUMNS


def meter_id(meter: FoundMeter, bus: str) -> str:
    """The id the gateway gives it: the address (DL/T 645) or ``bus:unit`` (Modbus)."""
    return f"{bus}:{meter.address}" if meter.protocol == "modbus" else meter.address


def gateway_toml(meters: Sequence[FoundMeter], bus: str, port: str) -> str:
    """``[[meters]]`` rows for gateway.toml (each with the line settings it answered at)."""
    q = json.dumps  # a TOML basic string is a JSON string for these characters
    lines = [
        f"# found by `taiqu field search` on {port}: check roles (area_total, customer) and",
        "# move the rows into gateway.toml under the bus they are on",
    ]
    for m in meters:
        lines += ["", "[[meters]]", f"id = {q(meter_id(m, bus))}", f"bus = {q(bus)}"]
        lines += [f"protocol = {q(m.protocol)}", f"address = {q(m.address)}"]
        if m.model:
            lines.append(f"model = {q(m.model)}")
        lines.append(f"line = {q(m.line)}")
    return "\n".join(lines) + "\n"


def archive_csv(meters: Sequence[FoundMeter], bus: str, area: str) -> str:
    """The archive CSV (``protocols.archive``; the head-end's meter import) of the meters found."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for m in meters:
        row = {
            "id": meter_id(m, bus),
            "area": area,
            "bus": bus,
            "protocol": m.protocol,
            "address": m.address,
            "model": m.model,
            "multiplier": "1",
            "role": "customer",
            "keep_power": "false",
            "pv": "false",
            "esam": "false",
        }
        writer.writerow([row.get(c, "") for c in COLUMNS])
    return out.getvalue()
