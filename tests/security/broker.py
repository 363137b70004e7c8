"""A real mosquitto started from the shipped ``deploy/mosquitto`` files, and MQTT test clients."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from headend.security.ca import LocalCA
from tests.services import free_port, wait_for_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


@dataclass
class SecureBroker:
    """mosquitto with ``taiqu.conf`` (paths moved into ``root``), TLS from a throwaway CA."""

    binary: str
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def broker_dir(self) -> Path:
        return self.root / "etc"

    @property
    def ca(self) -> LocalCA:
        return LocalCA(self.root / "ca")

    def prepare(self) -> None:
        """Config, ACL, CA and server certificate (credentials are enrolled by the tests)."""
        self.root.chmod(0o755)
        self.broker_dir.mkdir(parents=True)
        (self.root / "data").mkdir()
        now = datetime.now(UTC)
        self.ca.create(now)
        self.ca.issue_server(["127.0.0.1", "localhost"], now).write(
            self.broker_dir / "server.crt", self.broker_dir / "server.key"
        )
        shutil.copyfile(self.ca.cert_path, self.broker_dir / "ca.crt")
        shutil.copyfile(DEPLOY / "acl", self.broker_dir / "acl")
        (self.broker_dir / "passwd").write_text("")
        conf = (DEPLOY / "taiqu.conf").read_text()
        conf = conf.replace("/etc/mosquitto/taiqu/", f"{self.broker_dir}/")
        conf = conf.replace("/var/lib/mosquitto/", f"{self.root}/data/")
        conf = conf.replace("listener 8883\n", f"listener {self.port} 127.0.0.1\n")
        conf = conf.replace("log_dest syslog", f"log_dest file {self.root}/mosquitto.log")
        (self.root / "mosquitto.conf").write_text(conf)
        if os.geteuid() == 0:  # mosquitto drops to its own user: it owns its files, as deployed
            for path in [self.root, *self.root.rglob("*")]:
                if path.parts[len(self.root.parts) : len(self.root.parts) + 1] != ("ca",):
                    shutil.chown(path, "mosquitto", "mosquitto")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.root / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def reload(self, done: Callable[[], bool]) -> None:
        """SIGHUP (what systemctl reload does), then wait until ``done()`` holds."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("mosquitto did not take the new credentials")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    @classmethod
    def make(cls, binary: str) -> SecureBroker:
        """A broker in a fresh directory outside pytest's (0700) temporary tree."""
        broker = cls(binary, Path(tempfile.mkdtemp(prefix="taiqu-broker-")))
        broker.prepare()
        return broker

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Client:
    """A paho client on the TLS listener that records what it receives."""

    def __init__(
        self,
        broker: SecureBroker,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        tls: bool = True,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.suback: list[int] = []
        self.connect_rc: object = None
        self.disconnected = threading.Event()
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or username or "", clean_session=True
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set_context(ssl.create_default_context(cafile=str(broker.ca.cert_path)))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.broker = broker

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        with self._cond:
            self.connect_rc = rc
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.received.append((msg.topic, msg.payload))
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, rcs, props=None) -> None:
        with self._cond:
            self.suback += [int(getattr(rc, "value", rc)) for rc in rcs]
            self._cond.notify_all()

    def wait(self, predicate, timeout: float = 10.0, what: str = "") -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"timed out waiting for {what}")

    def connect(self) -> object:
        """Connect and return the CONNACK reason (a paho ReasonCode; 0 / 'Success' on success)."""
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()
        self.wait(lambda: self.connect_rc is not None or self.disconnected.is_set(), what="CONNACK")
        return self.connect_rc

    @property
    def accepted(self) -> bool:
        rc = self.connect_rc
        return rc is not None and not getattr(rc, "is_failure", True)

    def subscribe(self, topic: str) -> int:
        n = len(self.suback)
        self.client.subscribe(topic, qos=1)
        self.wait(lambda: len(self.suback) > n, what=f"SUBACK {topic}")
        return self.suback[n]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def topics(self) -> list[str]:
        with self._cond:
            return [t for t, _ in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def can_connect(broker: SecureBroker, user: str, password: str) -> bool:
    """Whether ``user`` gets in with ``password`` right now."""
    c = Client(broker, user, password, client_id=f"{user}-probe")
    try:
        c.connect()
        return c.accepted
    finally:
        c.close()
