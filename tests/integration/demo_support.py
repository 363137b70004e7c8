"""Running ``taiqu demo`` for the demo tests: the process, its printed logins, HTTP and MQTT."""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols.model import ReadingKind
from protocols.uplink import Batch, ReadingRecord

ENERGY = "energy.active.import.total"
RUN_FOR = 240  # the cap; the tests stop the demo as soon as everything was seen


def get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def post(url: str, token: str, body: Any = None, *, csv_text: str | None = None) -> Any:
    data, kind = (csv_text.encode(), "text/csv") if csv_text is not None else (b"", "")
    if csv_text is None:
        data, kind = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": kind},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def token_of(base: str, name: str, password: str) -> str:
    data = urllib.parse.urlencode({"username": name, "password": password}).encode()
    with urllib.request.urlopen(f"{base}/api/v1/auth/token", data=data, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def pid_of(*needles: str) -> int:
    """The pid of the process whose command line holds every one of ``needles``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(n.encode() in args for n in needles):
            return int(entry.name)
    raise AssertionError(f"no process with {needles} in its command line")


def sim_now(workdir: Path) -> datetime:
    """The head-end's clock now, from the clock line of the demo's headend.toml."""
    clock = tomllib.loads((workdir / "headend.toml").read_text())["clock"]
    wall = datetime.now(UTC) - clock["anchor"]
    return clock["start"] + wall * float(clock["factor"])  # type: ignore[no-any-return]


@dataclass
class Demo:
    """A running ``taiqu demo`` and what it printed."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    lines: list[str]
    deadline: float
    began: float
    reader: threading.Thread
    base: str = ""
    logins: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return "".join(self.lines)

    def until(self, what: str, check: Any, every: float = 1.0) -> Any:
        """Poll ``check`` until it returns something true (the demo must keep running)."""
        while True:
            try:
                got = check()
            except (urllib.error.URLError, OSError):
                got = None
            if got:
                return got
            assert self.proc.poll() is None, (
                f"the demo exited while waiting for {what}:\n{self.text()}"
            )
            assert time.monotonic() < self.deadline, f"{what} never came:\n{self.text()}"
            time.sleep(every)

    def token(self, name: str = "demo") -> str:
        return token_of(self.base, name, self.logins[name])

    def get(self, path: str, token: str) -> Any:
        return get(self.base + path, token)

    def post(self, path: str, token: str, body: Any = None, **kw: Any) -> Any:
        return post(self.base + path, token, body, **kw)


def start(workdir: Path) -> Demo:
    """``taiqu demo --port 0`` until it has printed the console URL and the three logins."""
    command = [sys.executable, "-m", "taiqu.cli", "demo", "--for", str(RUN_FOR), "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "240"},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    out = proc.stdout
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode(errors="replace") for line in out), daemon=True
    )
    reader.start()
    began = time.monotonic()
    demo = Demo(proc, workdir, lines, began + RUN_FOR, began, reader)
    while len(demo.logins) < 3:
        text = demo.text()
        if m := re.search(r"console: (http://127\.0\.0\.1:\d+)/", text):
            demo.base = m.group(1)
        demo.logins = dict(re.findall(r"login\s+(\w+)\s+/\s+(\S+)", text))
        if proc.poll() is not None or time.monotonic() > demo.deadline:
            proc.kill()
            proc.wait(20)
            reader.join(5)
            out.close()
            raise AssertionError(f"no console URL and logins printed:\n{text}")
        time.sleep(0.2)
    return demo


def stop(demo: Demo) -> None:
    """SIGTERM: the demo stops everything and exits 0 saying so."""
    try:
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(timeout=60) == 0, demo.text()
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait(20)
    demo.reader.join(5)  # it takes the last lines
    if demo.proc.stdout is not None:
        demo.proc.stdout.close()
    assert "stopped cleanly." in demo.text()


def uplink_sealer(bundle: Path) -> Callable[[str, bytes], bytes] | None:
    """How the gateway of an enrolment bundle signs its uplink (issue 19), when the bundle's
    snippet names a signing key (``[signatures] signing_key_file``); None without one."""
    snippet = tomllib.loads((bundle / "gateway-security.toml").read_text())
    key_file = snippet.get("signatures", {}).get("signing_key_file")
    if key_file is None:
        return None
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key((bundle / Path(key_file).name).read_bytes(), None)
    envelope = importlib.import_module("protocols.uplink.envelope")
    return envelope.Sealer(key).seal  # type: ignore[no-any-return]


class Mqtt:
    """An MQTT v5 client on the demo broker's TLS listener; records PUBACK and SUBACK reasons.

    ``seal``: what the gateway does to a payload before publishing it (its uplink signature)."""

    def __init__(
        self,
        port: int,
        ca: Path,
        user: str | None,
        password: str | None,
        seal: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        self.port = port
        self.seal = seal
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=user or "", protocol=mqtt.MQTTv5
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        self.connack: Any = None
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.received: list[str] = []  # topics of the messages delivered
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._cond:
            if self.connack is None:
                self.connack = rc
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self.received.append(message.topic)
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._cond:
            self.pubacks[mid] = int(getattr(rc, "value", rc))
            self._cond.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        with self._cond:
            self.subacks[mid] = [int(getattr(rc, "value", rc)) for rc in rcs]
            self._cond.notify_all()

    def _wait(self, ready: Any, what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(ready, 10), f"no {what}"

    def connect(self) -> bool:
        """Whether the broker accepted the connection."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (OSError, ssl.SSLError):
            return False
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")
        return not getattr(self.connack, "is_failure", True)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the PUBACK's reason code (0 accepted, 135 not authorised)."""
        if self.seal is not None:
            payload = self.seal(topic, payload)
        info = self.client.publish(topic, payload, qos=1)
        self._wait(lambda: info.mid in self.pubacks, f"PUBACK on {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; the SUBACK's reason code (mosquitto grants a subscription the
        ACL forbids reading, then delivers nothing on it)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        self._wait(lambda: mid in self.subacks, f"SUBACK on {topic}")
        return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def points(workdir: Path) -> dict[str, str]:
    """Account → tariff of its metering point, from the head-end's database (read only)."""
    with sqlite3.connect(f"file:{workdir / 'headend.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT account, tariff FROM prepay_account_points").fetchall())


def charge_lines(workdir: Path, accounts: set[str]) -> list[dict[str, Any]]:
    """The priced lines of the accounts' active charges with energy (read only)."""
    with sqlite3.connect(f"file:{workdir / 'headend.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT account, energy, lines FROM prepay_charges WHERE state = 'active'"
        ).fetchall()
    return [
        line
        for account, energy, lines in rows
        if account in accounts and Decimal(energy) > 0
        for line in json.loads(lines)
    ]


def broker_port(workdir: Path) -> int:
    port = re.search(
        r"^listener (\d+) 127\.0\.0\.1$", (workdir / "mosquitto.conf").read_text(), re.M
    )
    assert port, "the demo's broker has no loopback listener"
    return int(port.group(1))


def batch(gateway: str, readings: list[tuple[datetime, str, str]]) -> Batch:
    """An up/data batch of interval energy readings (time, meter, register value)."""
    records = [
        ReadingRecord(
            meter=meter,
            kind=ReadingKind.INTERVAL,
            gateway_time=at,
            meter_time=at,
            values={ENERGY: value},
        )
        for at, meter, value in readings
    ]
    return Batch(
        gateway=gateway,
        epoch=secrets.token_hex(8),
        seq=0,
        sent=datetime.now(UTC),
        records=tuple(records),
    )
