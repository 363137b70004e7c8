"""Cross-field checks of ``gateway.toml``: buses, meters, timing, signatures.

Each returns a list of one-line problems naming the file (or ``where``), the key and the fix;
``gateway.config.load.parse_config`` raises them together, the daemon re-runs ``check_meters`` on an
archive the head-end pushes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.models import GatewayConfig, MeterConfig


def cross_checks(path: Path, cfg: GatewayConfig) -> list[str]:
    """Buses with unique names and ports, then the meter, timing and signature checks."""
    problems: list[str] = []
    names: dict[str, int] = {}
    ports: dict[str, int] = {}
    for i, bus in enumerate(cfg.buses):
        if bus.name in names:
            problems.append(
                f"{path}: buses[{i}].name: {bus.name!r} is already buses[{names[bus.name]}]'s "
                "name: give each bus its own name"
            )
        names.setdefault(bus.name, i)
        port = _port_key(bus.port)
        if port in ports:
            problems.append(
                f"{path}: buses[{i}].port: {bus.port!r} is already used by "
                f"buses[{ports[port]}]: one bus per port; put its meters on that bus"
            )
        ports.setdefault(port, i)
    if cfg.broker.password is not None:
        problems.append(
            f"{path}: broker.password: a password does not belong in gateway.toml: put it in a "
            "file of mode 0600 named by broker.password_file, or in $TAIQU_BROKER_PASSWORD"
        )
    problems += check_meters(cfg, cfg.meters, where=str(path))
    problems += check_timing(cfg, where=str(path))
    problems += check_signatures(cfg, where=str(path))
    return problems


def check_signatures(cfg: GatewayConfig, *, where: str) -> list[str]:
    """Signed commands are required (``signatures_required``) but nothing can check them."""
    if cfg.signatures_required and cfg.signatures.trust_file is None:
        return [
            f"{where}: signatures.trust_file: head-end commands must be signed, and the gateway "
            "needs the head-end's public keys to check them: install headend-keys.json from "
            "`taiqu headend enrol-gateway` and set trust_file to it (a test bench with simulated "
            "meters may set required = false instead)"
        ]
    return []


def _port_key(port: str) -> str:
    if port.startswith("/"):
        try:
            return os.path.realpath(port)
        except OSError:
            return port
    return port.lower()


def check_meters(cfg: GatewayConfig, meters: Iterable[MeterConfig], *, where: str) -> list[str]:
    """Meters on declared buses, unique ids, unique addresses per bus."""
    problems: list[str] = []
    bus_names = {b.name for b in cfg.buses}
    ids: dict[str, int] = {}
    addresses: dict[tuple[str, str, str], int] = {}
    for i, m in enumerate(meters):
        key = f"{where}: meters[{i}]"
        if m.bus not in bus_names:
            problems.append(
                f"{key}.bus: no bus is named {m.bus!r}: use one of {sorted(bus_names)} "
                "or add a [[buses]] entry"
            )
        if m.id in ids:
            problems.append(f"{key}.id: {m.id!r} is already meters[{ids[m.id]}]: ids are unique")
        ids.setdefault(m.id, i)
        # DL/T 645 and 698.45 meters share the 12-digit nameplate address space on a bus
        family = "modbus" if m.is_modbus else "nameplate"
        addr = str(int(m.address)) if m.is_modbus else m.address
        akey = (m.bus, family, addr)
        if akey in addresses:
            problems.append(
                f"{key}.address: {m.address!r} is already meters[{addresses[akey]}] on bus "
                f"{m.bus!r}: addresses are unique per bus; fix the address or the bus"
            )
        addresses.setdefault(akey, i)
        if m.is_modbus and not _known_model(m.model):
            problems.append(
                f"{key}.model: no register map named {m.model!r}: use one of {known_models()}"
            )
    return problems


def known_models() -> list[str]:
    """Register map names the Modbus codec knows (empty until it is installed)."""
    from protocols.modbus.registers import models

    return list(models())


def _known_model(name: str) -> bool:
    models = known_models()
    return not models or name.upper() in {m.upper() for m in models}


def check_timing(cfg: GatewayConfig, *, where: str) -> list[str]:
    """Every bus's worst-case energy sweep (all meters timing out) must fit the interval."""
    from gateway.bus.timing import minimum_timeout_ms, worst_case_sweep_seconds

    problems: list[str] = []
    interval = cfg.schedule.energy_minutes * 60
    for i, bus in enumerate(cfg.buses):
        meters = [m for m in cfg.meters if m.bus == bus.name]
        worst = worst_case_sweep_seconds(bus.timing, bus.retries, len(meters))
        if worst > interval:
            problems.append(
                f"{where}: buses[{i}] ({bus.name}): with every meter silent a sweep of its "
                f"{len(meters)} meters takes up to {worst:.0f} s, more than "
                f"schedule.energy_minutes = {cfg.schedule.energy_minutes}: lower "
                "response_timeout_ms or retries, split the bus, or raise energy_minutes"
            )
        if bus.response_timeout_ms:
            least = minimum_timeout_ms(bus.timing)
            if bus.response_timeout_ms < least:
                problems.append(
                    f"{where}: buses[{i}].response_timeout_ms: {bus.response_timeout_ms} ms is "
                    f"shorter than a reply can take at {bus.baud} baud; use at least {least} ms "
                    "or 0 (derived)"
                )
    return problems
