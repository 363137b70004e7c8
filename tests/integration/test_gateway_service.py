"""``taiqu gateway run`` as systemd runs it: a subprocess with sd_notify and a watchdog.

The simulated fleet runs in this process on the same accelerated clock setting as the gateway
(both derive simulated time from the wall clock), the broker is a real mosquitto, and a small
subscriber acknowledges like the head-end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocols.uplink import Ack, Batch, ReadingRecord, decode_message, encode
from protocols.uplink.topics import HEADEND_UP, Topics
from taiqu.clock import make_clock
from tests.services import free_port

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

TAIQU = str(Path(sys.executable).with_name("taiqu"))
GW = "gw-svc"


def test_bad_config_exits_with_status_2_and_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.toml"
    bad.write_text(
        'gateway_id = "gw 1"\n[schedule]\nenergy_minutes = 7\n'
        '[[buses]]\nname = "bus1"\nport = "socket://127.0.0.1:1"\nbaud = 1234\n'
    )
    run = subprocess.run(
        [TAIQU, "gateway", "run", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert any("gateway_id" in line for line in lines)
    assert any("schedule.energy_minutes" in line for line in lines)
    assert any("buses[0].baud" in line for line in lines)
    assert all(line.startswith("taiqu gateway: ") for line in lines)
    assert "Traceback" not in run.stderr


SECURE = 'gateway_id = "gw-1"\n[[buses]]\nname = "bus1"\nport = "socket://127.0.0.1:1"\n'


@pytest.mark.parametrize(
    ("setup", "key", "says"),
    [
        ("", "signatures.trust_file", "taiqu headend enrol-gateway"),
        ("trust:{", "signatures.trust_file", "not JSON"),
        ("secrets:0644", "commands.meter_secrets_file", "readable by others (mode 0644)"),
        ("secrets:0640", "commands.meter_secrets_file", "chmod 600"),
    ],
    ids=["no-trust-file", "broken-trust-file", "world-readable", "group-readable"],
)
def test_security_files_that_cannot_be_used_exit_with_status_2(
    tmp_path: Path, setup: str, key: str, says: str
) -> None:
    text = SECURE
    if setup.startswith("trust:"):
        (tmp_path / "keys.json").write_text(setup.removeprefix("trust:"))
        text += f'[signatures]\ntrust_file = "{tmp_path / "keys.json"}"\n'
    elif setup.startswith("secrets:"):
        secrets = tmp_path / "meter-secrets.toml"
        secrets.write_text('[default]\npassword = "02123456"\n')
        os.chmod(secrets, int(setup.removeprefix("secrets:"), 8))
        text += f'[signatures]\nrequired = false\n[commands]\nmeter_secrets_file = "{secrets}"\n'
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    run = subprocess.run(
        [TAIQU, "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"taiqu gateway: {config}: {key}: ") and says in line, line
    assert "02123456" not in run.stderr and "Traceback" not in run.stderr


class Notifications:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self.address = f"@taiqu-test-{uuid.uuid4().hex[:12]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.poll())


class Acker:
    def __init__(self, port: int) -> None:
        self.meters: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"he-{uuid.uuid4().hex}")
        self.client.on_connect = lambda c, *_: c.subscribe(HEADEND_UP, qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        gateway, _kind, message = decode_message(msg.topic, bytes(msg.payload))
        if isinstance(message, Batch):
            with self.lock:
                self.meters |= {r.meter for r in message.records if isinstance(r, ReadingRecord)}
            client.publish(
                Topics(gateway).ack, encode(Ack(epoch=message.epoch, upto=message.last_seq)), qos=1
            )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_service_notifies_ready_feeds_the_watchdog_serves_metrics_and_stops_cleanly(
    mosquitto: Any, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = {"start": "2026-11-24T10:01:00+08:00", "factor": 60, "anchor": now.isoformat()}
    fleet_cfg = parse_fleet(
        {
            "clock": clock,
            "areas": [{"name": "a1", "gateway_id": GW}],
            "buses": [{"name": "bus1", "area": "a1", "baud": 9600, "pace": False}],
            "meters": [{"bus": "bus1", "protocol": "dlt645-2007", "address": "202611240001",
                        "count": 3}],
        },
        "service test fleet",
    )  # fmt: skip
    metrics_port = free_port()
    async with simulators.start_fleet(fleet_cfg, clock=make_clock(clock)) as fleet:
        lines = [
            f'gateway_id = "{GW}"',
            f"clock = {{ start = {clock['start']}, factor = 60, anchor = {clock['anchor']} }}",
            f'data_dir = "{tmp_path / "gw"}"',
            f"[broker]\nport = {mosquitto.port}",
            "[schedule]\nenergy_minutes = 1\nevents_minutes = 5\nbackfill_days = 1",
            f"[health]\nmetrics_port = {metrics_port}",
            f'[[buses]]\nname = "bus1"\nport = "{fleet.endpoints["bus1"]}"\nbaud = 9600',
        ]
        for ident in fleet.meters:
            lines.append(f'[[meters]]\nbus = "bus1"\nprotocol = "dlt645-2007"\naddress = "{ident}"')
        config = tmp_path / "gateway.toml"
        config.write_text("\n".join(lines) + "\n")
        notify = Notifications()
        acker = Acker(mosquitto.port)
        env = os.environ | {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "2000000"}
        log = tmp_path / "gateway.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [TAIQU, "gateway", "run", "--config", str(config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        try:
            await until(lambda: notify.count("READY=1") == 1, "READY=1")
            await until(lambda: acker.meters == set(fleet.meters), "every meter's readings")
            await until(lambda: notify.count("WATCHDOG=1") >= 2, "watchdog pings")

            def scrape() -> str:
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as response:
                    return str(response.read().decode())

            text = await asyncio.to_thread(scrape)
            assert 'taiqu_bus_link_up{bus="bus1"} 1.0' in text
            assert "taiqu_gateway_clock_synced 1.0" in text  # accelerated clock: trusted
            sent = next(
                line for line in text.splitlines()
                if line.startswith('taiqu_bus_transactions_total{bus="bus1"}')
            )  # fmt: skip
            assert float(sent.split()[-1]) >= len(fleet.meters)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, log.read_text()
            await until(lambda: notify.count("STOPPING=1") == 1, "STOPPING=1")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            acker.close()
            notify.sock.close()
