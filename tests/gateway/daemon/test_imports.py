"""What a starting daemon imports: the optional parts only when its configuration uses them.

Every module stays in memory for the life of the process, so a DL/T 645-only concentrator
should not carry the DL/T 698.45 codec, the Modbus maps (and pymodbus), the meter search, the
ESAM step models or ``cryptography`` (docs/benchmarks.md, "Gateway footprint").  Each case starts
the real daemon in a fresh interpreter (as ``taiqu gateway run`` does: CLI, config, secrets,
``Gateway.start``) against a closed port and an absent broker, and reads ``sys.modules``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parents[3]

PROBE = r"""
import asyncio, json, sys
from pathlib import Path

import gateway.cli  # what `taiqu gateway run` has imported before it builds the daemon
from gateway.config import load_config
from gateway.config.secrets import resolve_secrets
from gateway.daemon.app import Gateway

path = Path(sys.argv[1])
cfg = load_config(path)
resolve_secrets(cfg, path)


async def main() -> dict:
    gateway = Gateway(cfg, config_path=path)
    await gateway.start()
    await asyncio.sleep(0.3)  # the schedules and the start-up back-fill are under way
    started = {"meters": len(gateway.poller.meters), "executor": gateway.executor is not None}
    await gateway.stop()
    return started


started = asyncio.run(main())
print(json.dumps({**started, "modules": sorted(sys.modules)}))
"""

# Imported on first use, never at start: a search runs at night, a secured step with a command.
ON_USE = ("gateway.daemon.search", "gateway.field", "protocols.uplink.secured",
          "gateway.commands.secured")  # fmt: skip
# Imported at start only when the configuration has a meter or key that needs them.
BY_CONFIG = ("protocols.dlt698", "gateway.polling.dlt698", "gateway.commands.dlt698",
             "protocols.modbus", "gateway.polling.modbus", "pymodbus", "cryptography")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted({p for p in packages for m in modules if m == p or m.startswith(p + ".")})


def start(tmp: Path, meters: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    closed = f"socket://127.0.0.1:{free_port()}"  # nothing listens: the link retries
    toml = [
        'gateway_id = "gw-imports"',
        f'data_dir = "{tmp / "gw"}"',
        "[broker]",
        f"port = {free_port()}",  # no broker: the uplink connects in the background
        "[schedule]",
        "energy_minutes = 1",
        "backfill_days = 1",
        "[clock_trust]",
        'source = "trusted"',
    ]
    for section, body in sections.items():
        toml += [f"[{section}]", *body]
    toml += ["[[buses]]", 'name = "bus1"', f'port = "{closed}"']
    for meter in meters:
        toml += ["[[meters]]", *(f"{k} = {json.dumps(v)}" for k, v in meter.items())]
    path = tmp / "gateway.toml"
    path.write_text("\n".join(toml) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_a_dlt645_gateway_without_keys_imports_none_of_the_optional_parts(tmp_path):
    started = start(
        tmp_path,
        [{"bus": "bus1", "protocol": "dlt645-2007", "address": "202612060001"}],
        signatures=["required = false"],
    )
    assert started["meters"] == 1 and started["executor"]  # the daemon really started
    assert "gateway.polling.dlt645" in started["modules"]
    assert loaded(started["modules"], BY_CONFIG + ON_USE) == []


def test_the_parts_a_configuration_uses_are_imported_at_start(tmp_path):
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = {"key_id": "he-1", "public_key": base64.b64encode(public).decode(), "not_after": None}
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"format": "taiqu-trust-v1", "keys": [key]}))
    started = start(
        tmp_path,
        [
            {"bus": "bus1", "protocol": "dlt645-2007", "address": "202612060001"},
            {"bus": "bus1", "protocol": "dlt698", "address": "202612060002"},
            {
                "id": "bus1:7",
                "bus": "bus1",
                "protocol": "modbus",
                "address": "7",
                "model": "SDM630",
            },
        ],
        signatures=[f'trust_file = "{trust}"'],
        search=["enabled = true"],
    )
    assert started["meters"] == 3
    expected = ["cryptography", "gateway.polling.dlt698", "gateway.polling.modbus",
                "protocols.dlt698", "protocols.modbus", "pymodbus"]  # fmt: skip
    assert loaded(started["modules"], BY_CONFIG) == expected
    # the commands' 698 module waits for a command to a 698 meter; the search for its night
    assert loaded(started["modules"], (*ON_USE, "gateway.commands.dlt698")) == []
