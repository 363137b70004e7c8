"""The secured (ESAM) flow's end-to-end rig: mosquitto with the shipped ACL and passwords, the
head-end's ``serve`` parts with the laboratory encryption service, the real gateway and a fleet
whose ESAM meters share the key file (``test_e2e_esam.py``, ``bench/esam_latency.py``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from headend.app import create_app
from headend.auth import users
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.tables import mqtt_outbox
from headend.esam.software import create_key_file
from headend.security.keys import KeyStore
from headend.security.passwd import hash_password, new_password
from protocols.uplink import CommandResult, decode
from protocols.uplink.topics import Topics
from simulators.config import parse_config as parse_fleet
from simulators.fleet import start_fleet
from taiqu.clock import AcceleratedSetting, make_clock
from tests.integration.test_e2e_flows import PASSWORD, TUESDAY, Rig, Server, _async, wait_for
from tests.services import Mosquitto

GW, AREA = "gw-esam", "esam-a1"
ESAM, MISFILED = "202603100001", "202603100002"  # both have an ESAM; the archive flags only ESAM
PLAIN = "202603100003"  # an ordinary meter (``plain=True``: the benchmark's baseline)
HEADEND = "taiqu-headend"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
FACTOR = 10  # simulated seconds per real second (a session is 6 s of real time: room for load)
SESSION = 60  # the meters' authentication validity (simulated seconds), both sides


@dataclass
class Broker:
    """mosquitto with the shipped ACL, a password file and one password per identity."""

    server: Mosquitto
    passwords: dict[str, str] = field(default_factory=dict)

    def password_file(self, user: str, directory: Path) -> Path:
        path = directory / f"{user}.password"
        path.write_text(self.passwords[user] + "\n")
        path.chmod(0o600)
        return path


def start_broker(mosquitto_binary: str, tmp_path: Path) -> Broker:
    """A private mosquitto with the shipped ACL and passwords for the head-end and ``GW``."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    passwords = {HEADEND: new_password(), GW: new_password()}
    (workdir / "passwd").write_text(
        "".join(f"{user}:{hash_password(pw)}\n" for user, pw in passwords.items())
    )
    shutil.copyfile(DEPLOY / "acl", workdir / "acl")
    server = Mosquitto(
        mosquitto_binary,
        workdir,
        extra_config=(
            "user root\n"  # only matters as root: read the files of this private directory
            "allow_anonymous false\n"
            f"password_file {workdir}/passwd\n"
            f"acl_file {workdir}/acl\n"
        ),
    )
    server.start()
    return Broker(server, passwords)


def fleet_doc(anchor: datetime, key_file: Path, factor: float, plain: bool) -> dict[str, Any]:
    extra = [{"bus": "bus1", "address": PLAIN, "seed": 3}] if plain else []
    return {
        "clock": {"start": TUESDAY, "factor": factor, "anchor": anchor},
        "zone": "Asia/Shanghai",
        "esam": {"key_file": str(key_file), "window_s": SESSION},
        "areas": [{"name": AREA, "gateway_id": GW}],
        "buses": [{"name": "bus1", "area": AREA, "baud": 9600, "pace": False}],
        "meters": [
            {"bus": "bus1", "address": ESAM, "esam": True, "seed": 1},
            {"bus": "bus1", "address": MISFILED, "esam": True, "seed": 2},
            *extra,
        ],
    }


@dataclass
class EsamRig:
    """The running system, the fleet's ESAMs and an attacker's view of the broker."""

    rig: Rig
    broker: Broker
    tmp: Path

    def log(self, meter: str = ESAM) -> list[tuple[str, bool, str]]:
        return [(e.kind, e.accepted, e.reason) for e in self.rig.fleet.esams[meter].log]

    def relay(self, meter: str = ESAM) -> str:
        return str(self.rig.fleet.control.relay(meter)["relay"])

    def outbox(self) -> list[bytes]:
        with reading(self.rig.engine) as conn:
            rows = conn.execute(
                select(mqtt_outbox.c.payload).where(mqtt_outbox.c.topic == Topics(GW).cmd)
            ).all()
        return [bytes(r.payload) for r in rows]

    def steps_of(self, command_id: str, kind: str) -> list[bytes]:
        out = []
        for payload in self.outbox():
            body = json.loads(payload)
            step = (body.get("params") or {}).get("esam") or {}
            if body["id"].startswith(command_id) and step.get("step") == kind:
                out.append(payload)
        return out

    @property
    def encryption(self) -> Any:
        return self.rig.app.state.dispatcher.encryption

    @encryption.setter
    def encryption(self, service: Any) -> None:
        self.rig.app.state.dispatcher.encryption = service


class Attacker:
    """Holds the head-end's broker identity (username and password), not its signing key."""

    def __init__(self, broker: Broker) -> None:
        self.results: list[CommandResult] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stolen-headend")
        self.client.username_pw_set(HEADEND, broker.passwords[HEADEND])
        self.client.on_message = lambda c, u, msg: self.results.append(
            decode(bytes(msg.payload), CommandResult)
        )
        self.client.connect(broker.server.host, broker.server.port)
        self.client.loop_start()
        self.client.subscribe(Topics(GW).result, qos=1)  # the ACL lets the head-end read up/

    def publish(self, payload: bytes) -> None:
        self.client.publish(Topics(GW).cmd, payload, qos=1).wait_for_publish(5)

    def outcome(self, command_id: str) -> Callable[[], Any]:
        """The gateway's final word on ``command_id`` (after ``received``)."""

        async def probe() -> Any:
            final = [r for r in self.results if r.id == command_id and r.state != "received"]
            return final[-1] if final else None

        return probe

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def add_archive(api: httpx.AsyncClient, plain: bool) -> None:
    since = {"valid_from": (TUESDAY - timedelta(days=1)).isoformat()}
    assert (await api.post("/api/v1/gateways", json={"id": GW}, params=since)).status_code == 201
    r = await api.post("/api/v1/areas", json={"id": AREA, "gateway": GW}, params=since)
    assert r.status_code == 201, r.text
    for meter, esam in ((ESAM, True), (MISFILED, False), *([(PLAIN, False)] if plain else [])):
        body = {"id": meter, "area": AREA, "bus": "bus1", "address": meter, "esam": esam}
        r = await api.post("/api/v1/meters", json=body, params=since)
        assert r.status_code == 201, r.text


@asynccontextmanager
async def running(
    broker: Broker,
    tmp_path: Path,
    *,
    factor: float = FACTOR,
    dispatch_interval: float | None = None,
    plain: bool = False,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[EsamRig]:
    """Fleet, head-end (serve's parts, laboratory encryption service) and gateway.

    ``dispatch_interval`` in simulated seconds (default: a quarter of a real second)."""
    from gateway.config import parse_config
    from gateway.daemon.app import Gateway

    key_file = tmp_path / "esam-lab.key"
    create_key_file(key_file)  # `taiqu headend esam-lab-key`: shared by head-end and fleet
    anchor = datetime.now(UTC)
    clock_doc = {"start": TUESDAY, "factor": factor, "anchor": anchor}
    clock = make_clock(AcceleratedSetting(**clock_doc))
    keys = KeyStore(tmp_path / "keys")
    keys.create(TUESDAY - timedelta(days=1))
    trust = keys.export_trust(tmp_path / "headend-keys.json", TUESDAY)
    mq = broker.server
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}"),
        mqtt=MqttSettings(
            host=mq.host,
            port=mq.port,
            client_id=HEADEND,
            username=HEADEND,
            password_file=broker.password_file(HEADEND, tmp_path),
        ),
        ingest=IngestSettings(outbox_interval=0.05),
        extra={
            "clock": clock_doc,
            "security": {"keys_dir": str(tmp_path / "keys")},
            "commands": {"dispatch_interval": dispatch_interval or 0.25 * factor},
            "analytics": {"job": False},
            "esam": {
                "service": "software",
                "key_file": str(key_file),
                "production": False,
                "session_seconds": SESSION,
                "max_attempts": 2,
            },
            **(extra or {}),
        },
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    with writing(engine) as conn:
        users.create(conn, "ada", "admin", PASSWORD, actor="test", now=clock.now())
    app = create_app(settings, engine=engine, workers=True)
    server = Server(app)
    server.start()
    try:
        async with (
            start_fleet(parse_fleet(fleet_doc(anchor, key_file, factor, plain))) as fleet,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as api,
        ):
            r = await api.post("/api/v1/auth/token", data={"username": "ada", "password": PASSWORD})
            api.headers["Authorization"] = "Bearer " + r.json()["access_token"]
            await add_archive(api, plain)
            doc = {
                "gateway_id": GW,
                "clock": clock_doc,
                "zone": "Asia/Shanghai",
                "data_dir": str(tmp_path / "gw"),
                "broker": {
                    "host": mq.host,
                    "port": mq.port,
                    "password_file": str(broker.password_file(GW, tmp_path)),
                },
                "schedule": {"energy_minutes": 60, "events_minutes": 60, "backfill_days": 0},
                "buses": [
                    {
                        "name": "bus1",
                        "port": fleet.endpoints["bus1"],
                        "baud": 9600,
                        "parity": "E",
                        "response_timeout_ms": 300,
                        "retries": 1,
                    }
                ],
                "meters": [],
                "signatures": {"trust_file": str(trust)},
            }
            gateway = Gateway(
                parse_config(doc, tmp_path / "gw.toml"), config_path=tmp_path / "gw.toml"
            )
            await gateway.start()
            try:
                await wait_for(
                    _async(lambda: len(gateway.poller.meters) == 2 + plain),  # type: ignore[union-attr]
                    "the gateway to apply the head-end's archive push",
                )
                yield EsamRig(
                    Rig(fleet, gateway, app, api, engine, keys, fleet.control.meters()),
                    broker,
                    tmp_path,
                )
            finally:
                await gateway.stop()
    finally:
        server.stop()
        engine.dispose()
