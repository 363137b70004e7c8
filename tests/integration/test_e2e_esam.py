"""Secured (ESAM) remote control end to end: simulated cost-control meter → real gateway →
mosquitto with the shipped ACL and password file → the head-end as ``serve`` runs it.

The head-end's laboratory encryption service and the fleet's software ESAM share only the key
file (``[esam] key_file`` of both).  Ground truth: the simulated relay and the ESAM's log.  What
is tried: trip and reclose through the secured flow; plaintext to an ESAM meter the archive does
not flag; the encryption service sealing a forged MAC, going down between authentication and
sealing; the gateway getting the second step after the session ended; and an attacker holding the
head-end's broker identity (not its signing key) replaying a genuine step, publishing a forged
step and an unsigned plaintext trip.  Nothing but the genuine trip and reclose switches.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from headend.app import create_app
from headend.auth import users
from headend.commands.signing import Ed25519Signer, sign_command
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.tables import mqtt_outbox
from headend.esam import EncryptionUnavailable
from headend.esam.software import create_key_file
from headend.security.keys import KeyStore
from headend.security.passwd import hash_password, new_password
from protocols.uplink import Command, CommandAction, CommandResult, decode, encode
from protocols.uplink.topics import Topics
from taiqu.clock import AcceleratedSetting, make_clock
from tests.integration.test_e2e_flows import PASSWORD, TUESDAY, Rig, Server, _async, wait_for
from tests.services import Mosquitto

pytestmark = pytest.mark.integration
fleet_mod = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

GW, AREA = "gw-esam", "esam-a1"
ESAM, MISFILED = "202603100001", "202603100002"  # both have an ESAM; the archive flags only ESAM
PLAIN = "202603100003"  # an ordinary meter (``plain=True``: the benchmark's baseline)
HEADEND = "taiqu-headend"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
FACTOR = 20  # simulated seconds per real second
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


@pytest.fixture
def broker(mosquitto_binary: str, tmp_path: Path) -> Any:
    started = start_broker(mosquitto_binary, tmp_path)
    yield started
    started.server.stop()


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
            decode(msg.payload, CommandResult)
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
            fleet_mod.start_fleet(parse_fleet(fleet_doc(anchor, key_file, factor, plain))) as fleet,
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


class ForgedMac:
    """An encryption service whose sealed controls carry a wrong MAC (last byte flipped)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def seal_control(self, *args: Any) -> bytes:
        sealed: bytes = self.real.seal_control(*args)
        return sealed[:-1] + bytes([sealed[-1] ^ 0x5A])


class DownAfterAuthenticate(ForgedMac):
    """The utility's machine stops answering between authentication and sealing."""

    def seal_control(self, *args: Any) -> bytes:
        raise EncryptionUnavailable("connection refused (192.0.2.10:8000)")


class Unreachable(ForgedMac):
    """The utility's machine does not answer at all."""

    def authenticate(self, address: str) -> Any:
        raise EncryptionUnavailable("connection refused")


async def test_secured_trip_reclose_and_everything_that_must_not_switch(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(broker, tmp_path) as e:
        r = e.rig
        # 1. the genuine trip: authenticate → sealed control → relay read back
        assert e.relay() == "closed"
        trip = await r.command("relay_trip", [ESAM])
        done = await r.state_of(trip, "executed", "failed", "expired")
        assert done["state"] == "executed", done
        assert e.relay() == "open"
        [target] = done["targets"]
        assert target["detail"]["relay"] == "open", target
        assert [s["kind"] for s in done["steps"]] == ["authenticate", "control"], done["steps"]
        assert e.log() == [("authenticate", True, ""), ("control", True, "")]
        # every step went out signed by the head-end's key (the gateway verified it)
        [control_step] = e.steps_of(trip, "control")
        assert json.loads(control_step)["signature"]["alg"] == "ed25519"

        # 2. reclose the same way
        close = await r.command("relay_close_direct", [ESAM])
        done = await r.state_of(close, "executed", "failed", "expired")
        assert done["state"] == "executed", done
        assert e.relay() == "closed" and done["targets"][0]["detail"]["relay"] == "closed"
        assert e.log()[-2:] == [("authenticate", True, ""), ("control", True, "")]
        moves = len(r.fleet.meters[ESAM].relay_log)
        seen = len(e.log())

        # 3. plaintext 1CH to an ESAM meter the archive does not flag: the meter refuses
        plain = await r.command("relay_trip", [MISFILED])
        done = await r.state_of(plain, "executed", "failed", "expired")
        assert done["state"] == "failed", done
        assert done["targets"][0]["reason"], done
        assert "password_error_or_unauthorised" in done["targets"][0]["reason"], done
        assert e.relay(MISFILED) == "closed"
        assert e.log(MISFILED) == [
            ("plaintext_control", False, "plaintext refused outside factory mode")
        ]

        # 4. the head-end's broker identity, stolen: replay, forged step, unsigned trip
        attacker = Attacker(broker)
        try:
            attacker.publish(control_step)  # the genuine, signed trip step, again
            replayed = await wait_for(attacker.outcome(json.loads(control_step)["id"]), "replay")
            assert replayed.state == "refused", replayed
            now = r.app.state.clock.now()
            step = json.loads(control_step)["params"]
            step["esam"]["sealed"] = "00" * 20
            forged = Command(
                id=f"c-forged-{uuid.uuid4().hex[:8]}",
                gateway=GW,
                meters=(ESAM,),
                action=CommandAction.RELAY_TRIP,
                issued=now,
                valid_until=now + timedelta(minutes=1),
                nonce=uuid.uuid4().hex[:16],
                params=step,
            )
            stranger = KeyStore(tmp_path / "stranger")
            stranger.create(TUESDAY - timedelta(days=1))
            forged = sign_command(forged, Ed25519Signer(stranger))  # not the head-end's key...
            assert forged.signature is not None
            head_end_key = r.keys.current(now).key_id  # ...under the head-end's key id
            forged = forged.model_copy(
                update={"signature": forged.signature.model_copy(update={"key_id": head_end_key})}
            )
            attacker.publish(encode(forged))
            unsigned = forged.model_copy(
                update={"id": "c-unsigned-1", "params": {}, "signature": None}
            )
            attacker.publish(encode(unsigned))
            for command in (forged, unsigned):
                refused = await wait_for(attacker.outcome(command.id), command.id)
                assert refused.state == "refused" and refused.reason, refused
            reasons = {x.id: x.reason for x in attacker.results}
        finally:
            attacker.close()
        assert reasons == {
            json.loads(control_step)["id"]: "duplicate",
            forged.id: "signature: bad_signature",
            unsigned.id: "signature: unsigned",
        }
        assert e.relay() == "closed" and len(r.fleet.meters[ESAM].relay_log) == moves
        assert len(e.log()) == seen, "an attacker's frame reached the meter"

        # 5. the encryption service seals a wrong MAC: the meter refuses, nothing switches
        genuine = e.encryption
        e.encryption = ForgedMac(genuine)
        bad = await r.command("relay_trip", [ESAM])
        done = await r.state_of(bad, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed" and done["targets"][0]["reason"], done
        assert done["targets"][0]["reason"] == (
            "the meter refused the control step: password_error_or_unauthorised; "
            "gave up after 2 authentications"
        )
        assert ("control", False, "MAC does not verify") in e.log()[seen:]
        assert e.relay() == "closed"

        # 6. the encryption service goes down after authenticating: nothing sent, reason kept
        seen = len(e.log())
        e.encryption = DownAfterAuthenticate(genuine)
        down = await r.command("relay_trip", [ESAM])
        done = await r.state_of(down, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed", done
        assert "connection refused" in done["targets"][0]["reason"], done
        assert [kind for kind, *_ in e.log()[seen:]] == ["authenticate"]
        assert e.relay() == "closed"

        # ... and unreachable from the start: nothing reaches the meter at all
        seen = len(e.log())
        e.encryption = Unreachable(genuine)
        down = await r.command("relay_trip", [ESAM])
        done = await r.state_of(down, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed", done
        assert done["targets"][0]["reason"] == "encryption service: connection refused", done
        assert e.log()[seen:] == [] and e.relay() == "closed"

        # 7. the second step reaches the gateway after the session ended (a busy bus, a slow
        # link): the gateway sends nothing, the head-end restarts, then gives up
        import gateway.commands.executor as executor
        from protocols.uplink.secured import ControlStep

        real_run_step = executor.run_step

        async def late(ex: Any, command: Any, meter: Any, step: Any) -> Any:
            while isinstance(step, ControlStep) and ex.clock.now() < step.session_until:
                await asyncio.sleep(0.05)
            return await real_run_step(ex, command, meter, step)

        monkeypatch.setattr(executor, "run_step", late)
        seen = len(e.log())
        slow = await r.command("relay_trip", [ESAM])
        done = await r.state_of(slow, "failed", "executed", "expired", timeout=60)
        monkeypatch.setattr(executor, "run_step", real_run_step)
        assert done["state"] == "failed", done
        assert "validity window had passed" in done["targets"][0]["reason"], done
        controls = [x for x in done["steps"] if x["kind"] == "control"]
        assert [(x["state"], x["reason"]) for x in controls] == [
            ("failed", "the session's validity window had passed")
        ] * 2
        assert [kind for kind, *_ in e.log()[seen:]] == ["authenticate", "authenticate"]
        assert e.relay() == "closed" and len(r.fleet.meters[ESAM].relay_log) == moves
        controls = [x for x in done["steps"] if x["kind"] == "control"]
        assert [(x["state"], x["reason"]) for x in controls] == [
            ("failed", "the session's validity window had passed")
        ] * 2
