"""Write the gateway configuration (``gateway.toml``, /work/briefs format) matching a fleet.

One file per area (one gateway per transformer area).  With one area the file is written at
the given path; with several, ``{area}`` in the path is replaced, or ``-<area>`` is added
before the suffix.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulators.fleet import Area, Fleet
from taiqu.clock import setting_to_toml

ENDPOINT_PLACEHOLDER = "{area}"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render(
    fleet: Fleet, area: Area, broker_host: str = "127.0.0.1", broker_port: int = 1883
) -> str:
    """The gateway.toml text for one area of a started fleet."""
    config = fleet.config
    lines = [
        f"# Written by `taiqu sim serve` for area {area.name!r}: connect a gateway in one step.",
        f"gateway_id = {_q(area.gateway_id)}",
        f"clock = {setting_to_toml(config.clock)}",
        f"zone = {_q(config.zone)}",
        f"data_dir = {_q(f'./.run/{area.gateway_id}')}",
        "",
        "[broker]",
        f"host = {_q(broker_host)}",
        f"port = {broker_port}",
        "keepalive = 60",
        "",
        "[schedule]",
        "energy_minutes = 15",
        "events_minutes = 5",
        "instant_minutes = 0",
        'daily_frozen_at = "00:05"',
        "backfill_days = 7",
        "",
        "# A bench with simulated meters accepts unsigned commands.  In the field, install the",
        "# head-end's keys (`taiqu headend enrol-gateway`), set trust_file and required = true.",
        "[signatures]",
        "required = false",
    ]
    for b in config.buses:
        if b.area != area.name:
            continue
        lines += [
            "",
            "[[buses]]",
            f"name = {_q(b.name)}",
            f"port = {_q(fleet.endpoints.get(b.name, b.listen))}",
            *(
                [f"# or port = {_q(fleet.rfc2217[b.name])}: RFC 2217, line settings reach the bus"]
                if b.name in fleet.rfc2217
                else []
            ),
            f"baud = {b.baud}",
            f"parity = {_q(b.parity)}",
            f"bytesize = {b.bytesize}",
            f"stopbits = {b.stopbits}",
            "response_timeout_ms = 0",
            "retries = 1",
        ]
    for ident, meter in fleet.meters.items():
        if fleet.meter_area[ident] != area.name:
            continue
        if meter.spec.removed_at < float("inf") or meter.spec.installed_at > fleet.started_at:
            continue  # replacements: the archive changes when the meter is swapped
        lines += [
            "",
            "[[meters]]",
            f"id = {_q(ident)}",
            f"bus = {_q(fleet.meter_bus[ident])}",
            f"protocol = {_q(meter.spec.protocol)}",
            f"address = {_q(meter.address)}",
            f"model = {_q(meter.spec.model)}",
            f"role = {_q(meter.spec.role)}",
        ]
        own = fleet.meter_line.get(ident)
        if own is not None and own != fleet.buses[fleet.meter_bus[ident]].line:
            lines.append(
                f"# this meter runs at {own} ({meter.spec.personality.name}), not the bus's"
            )
    return "\n".join(lines) + "\n"


def paths_for(path: str | Path, areas: list[str]) -> dict[str, Path]:
    """Where each area's file goes."""
    path = Path(path)
    if len(areas) == 1 and ENDPOINT_PLACEHOLDER not in str(path):
        return {areas[0]: path}
    out = {}
    for name in areas:
        if ENDPOINT_PLACEHOLDER in str(path):
            out[name] = Path(str(path).replace(ENDPOINT_PLACEHOLDER, name))
        else:
            out[name] = path.with_name(f"{path.stem}-{name}{path.suffix or '.toml'}")
    return out


def write_gateway_configs(fleet: Fleet, path: str | Path, **broker: object) -> list[Path]:
    """Write one gateway.toml per area; returns the paths written."""
    written = []
    for name, target in paths_for(path, list(fleet.areas)).items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(fleet, fleet.areas[name], **broker))  # type: ignore[arg-type]
        written.append(target)
    return written
