"""Operator flows end to end: simulated meters → real gateway → mosquitto → the head-end as
``serve`` runs it (uvicorn on a port, ingest, dispatcher, jobs, signed commands) → HTTP API.

Every part runs on one accelerated clock setting (as the demo does).  The archive goes in through
the API as an admin would enter it, and reaches the gateway as a retained archive push.  Ground
truth comes from the simulators (``fleet.control``): relay states, button presses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from headend.app import create_app
from headend.auth import users
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.tables import mqtt_outbox
from headend.security.keys import KeyStore
from protocols.uplink import Command, decode
from protocols.uplink.topics import Topics
from taiqu.clock import AcceleratedSetting, make_clock
from tests.services import free_port

pytestmark = pytest.mark.integration
fleet_mod = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
GW = "gw-e2e"
AREA = "e2e-a1"
PASSWORD = "e2e-password-123"
ENERGY = "energy.active.import.total"
# Tuesday 2026-03-10 09:30 in Shanghai: a working day, inside the disconnect window (08-17).
TUESDAY = datetime(2026, 3, 10, 9, 30, tzinfo=SHANGHAI)


def fleet_doc(factor: float, anchor: datetime, *, mean_kw: float | None = None) -> dict[str, Any]:
    """One area: DL/T 645-2007 customers and an area total meter on bus1, two Modbus on bus2."""
    customers: dict[str, Any] = {
        "bus": "bus1",
        "protocol": "dlt645-2007",
        "address": "202603100001",
        "count": 3,
        "profile": "residential",
        "seed": 7,
    }
    if mean_kw is not None:
        customers |= {"profile": "flat", "mean_kw": mean_kw}
    return {
        "clock": {"start": TUESDAY, "factor": factor, "anchor": anchor},
        "zone": "Asia/Shanghai",
        "areas": [{"name": AREA, "gateway_id": GW}],
        "buses": [
            {"name": "bus1", "area": AREA, "baud": 9600, "pace": False},
            {"name": "bus2", "area": AREA, "baud": 9600, "parity": "N", "pace": False},
        ],
        "meters": [
            customers,
            {"bus": "bus1", "address": "202603109999", "role": "area_total", "profile": "flat"},
            {"bus": "bus2", "protocol": "modbus", "model": "DDSU666", "address": "1", "count": 2},
        ],
    }


def gateway_doc(fleet: Any, broker: Any, data_dir: Path, clock: dict[str, Any]) -> dict[str, Any]:
    """The gateway.toml of the area (its archive comes from the head-end's push)."""
    return {
        "gateway_id": GW,
        "clock": clock,
        "zone": "Asia/Shanghai",
        "data_dir": str(data_dir),
        "broker": {"host": broker.host, "port": broker.port},
        "schedule": {
            "energy_minutes": 15,
            "events_minutes": 5,
            "instant_minutes": 0,
            "backfill_days": 0,
        },
        "buses": [
            {
                "name": b.name,
                "port": fleet.endpoints[b.name],
                "baud": b.baud,
                "parity": b.parity,
                "response_timeout_ms": 300,
                "retries": 1,
            }
            for b in fleet.config.buses
        ],
        "meters": [],
    }


class Server:
    """The head-end app on uvicorn in a thread, as ``taiqu headend serve`` runs it."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="headend", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the head-end did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "the head-end did not stop"


async def wait_for(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    """Poll ``probe`` until it returns something truthy (then return it) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Rig:
    """The running system and an API client signed in as an admin."""

    fleet: Any
    gateway: Any
    app: Any
    api: httpx.AsyncClient
    engine: Any
    keys: KeyStore
    meters: list[dict[str, Any]]

    async def command(self, action: str, meters: list[str], **params: Any) -> str:
        r = await self.api.post(
            "/api/v1/commands", json={"action": action, "meters": meters, "params": params}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def state_of(self, command_id: str, *states: str, timeout: float = 30.0) -> Any:
        async def probe() -> Any:
            body = (await self.api.get(f"/api/v1/commands/{command_id}")).json()
            return body if body["state"] in states else None

        return await wait_for(probe, f"command {command_id} to be {states}", timeout)


async def add_archive(api: httpx.AsyncClient, meters: list[dict[str, Any]]) -> None:
    """Enter the gateway, the area and every meter through the API (in force a day before the
    simulated start: the archive API's default ``valid_from`` is the wall clock's now)."""
    since = {"valid_from": (TUESDAY - timedelta(days=1)).isoformat()}
    assert (await api.post("/api/v1/gateways", json={"id": GW}, params=since)).status_code == 201
    r = await api.post("/api/v1/areas", json={"id": AREA, "gateway": GW}, params=since)
    assert r.status_code == 201, r.text
    for m in meters:
        body = {
            "id": m["id"],
            "area": AREA,
            "bus": m["bus"],
            "protocol": m["protocol"],
            "address": m["address"],
            "model": m["model"] or None,
            "role": m["role"],
            "tariff_category": "res" if m["role"] == "customer" else "",
        }
        r = await api.post("/api/v1/meters", json=body, params=since)
        assert r.status_code == 201, r.text


@asynccontextmanager
async def running(
    mosquitto: Any,
    tmp_path: Path,
    *,
    factor: float,
    extra: dict[str, Any] | None = None,
    mean_kw: float | None = None,
) -> AsyncIterator[Rig]:
    """Fleet, head-end (serve's parts) and gateway on one accelerated clock."""
    from gateway.config import parse_config
    from gateway.daemon.app import Gateway

    anchor = datetime.now(UTC)
    clock_doc = {"start": TUESDAY, "factor": factor, "anchor": anchor}
    clock = make_clock(AcceleratedSetting(**clock_doc))
    keys = KeyStore(tmp_path / "keys")
    keys.create(TUESDAY - timedelta(days=1))
    trust = keys.export_trust(tmp_path / "headend-keys.json", TUESDAY)  # what the gateway trusts
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}"),
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-e2e"),
        ingest=IngestSettings(outbox_interval=0.05),
        extra={
            "clock": clock_doc,
            "security": {"keys_dir": str(tmp_path / "keys")},
            "commands": {"dispatch_interval": min(60.0, factor / 4)},
            "analytics": {"job": False},
            **(extra or {}),
        },
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    with writing(engine) as conn:
        users.create(conn, "ada", "admin", PASSWORD, actor="test", now=clock.now())
    app = create_app(settings, engine=engine, workers=True)
    assert app.state.clock.now() - clock.now() < timedelta(minutes=5)  # built from the setting
    server = Server(app)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with (
            fleet_mod.start_fleet(parse_fleet(fleet_doc(factor, anchor, mean_kw=mean_kw))) as fleet,
            httpx.AsyncClient(base_url=base, timeout=30) as api,
        ):
            r = await api.post("/api/v1/auth/token", data={"username": "ada", "password": PASSWORD})
            api.headers["Authorization"] = "Bearer " + r.json()["access_token"]
            meters = fleet.control.meters()
            await add_archive(api, meters)
            cfg = parse_config(
                gateway_doc(fleet, mosquitto, tmp_path / "gw", clock_doc)
                | {"signatures": {"trust_file": str(trust)}},
                tmp_path / "gw.toml",
            )
            gateway = Gateway(cfg, config_path=tmp_path / "gw.toml")
            await gateway.start()
            try:
                await wait_for(
                    _async(lambda: len(gateway.poller.meters) == len(meters)),  # type: ignore[union-attr]
                    "the gateway to apply the head-end's archive push",
                )
                yield Rig(fleet, gateway, app, api, engine, keys, meters)
            finally:
                await gateway.stop()
    finally:
        server.stop()
        engine.dispose()


def _async(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return predicate()

    return probe


def signed_commands(engine: Any) -> list[Command]:
    """The commands the head-end queued for the gateway (and the broker confirmed)."""
    with reading(engine) as conn:
        rows = conn.execute(
            select(mqtt_outbox.c.payload, mqtt_outbox.c.published_at).where(
                mqtt_outbox.c.topic == Topics(GW).cmd
            )
        ).all()
    assert all(r.published_at is not None for r in rows)
    return [decode(bytes(r.payload), Command) for r in rows]


def check_signature(keys: KeyStore, command: Command) -> None:
    """The command carries a valid Ed25519 signature by the head-end's current key."""
    assert command.signature is not None and command.signature.alg == "ed25519"
    info = keys.current(command.issued)
    assert command.signature.key_id == info.key_id
    Ed25519PublicKey.from_public_bytes(info.public_key).verify(
        base64.b64decode(command.signature.value), command.signing_bytes()
    )


@pytest.fixture
async def rig(mosquitto: Any, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running(mosquitto, tmp_path, factor=60) as r:
        yield r


async def test_operator_flows(rig: Rig) -> None:
    api, fleet = rig.api, rig.fleet
    # (a) every simulated meter's readings reach the API
    await rig.gateway.energy_job()

    async def all_read() -> bool:
        for m in rig.meters:
            r = await api.get(f"/api/v1/meters/{m['id']}/readings", params={"quantity": ENERGY})
            if r.status_code != 200 or not r.json()["items"]:
                return False
        return True

    await wait_for(all_read, "readings of every meter")
    at = {"at": rig.app.state.clock.now().isoformat()}
    latest = (await api.get(f"/api/v1/areas/{AREA}/latest", params=at)).json()
    assert latest["read"] == len(rig.meters) and latest["missing"] == []

    # (b) an on-demand read returns fresh values on the command and in readings
    target = "202603100001"
    read = await rig.command("read", [target], quantities=[ENERGY, "voltage.a"])
    done = await rig.state_of(read, "executed", "failed", "expired")
    assert done["state"] == "executed", done

    [tgt] = done["targets"]
    assert set(tgt["detail"]["quantities"]) == {ENERGY, "voltage.a"}, tgt
    created = datetime.fromisoformat(done["created_at"])

    async def fresh(quantity: str) -> Any:  # the values come on up/data, the outcome on up/result
        r = await api.get(
            f"/api/v1/meters/{target}/readings",
            params={"quantity": quantity, "from": created.isoformat()},
        )
        return r.json()["items"]

    for quantity in (ENERGY, "voltage.a"):
        [value, *_] = await wait_for(partial(fresh, quantity), f"a fresh {quantity}")
        assert datetime.fromisoformat(value["time"]) >= created and value["register"]

    async def linked() -> Any:  # the gateway tags the read's records with the command id
        body = (await api.get(f"/api/v1/commands/{read}")).json()
        return body["readings"] if len(body["readings"]) >= 2 else None

    brought = await wait_for(linked, "the read's readings on the command")
    assert {(r["meter"], r["quantity"]) for r in brought} == {
        (target, ENERGY),
        (target, "voltage.a"),
    }

    # (c) a disconnect trips the simulated meter; read-back on the command
    assert fleet.control.relay(target)["relay"] == "closed"
    trip = await rig.command("relay_trip", [target])
    done = await rig.state_of(trip, "executed", "failed", "expired")
    assert done["state"] == "executed", done
    assert fleet.control.relay(target)["relay"] == "open"  # ground truth
    [tgt] = done["targets"]
    assert tgt["detail"]["relay"] == "open" and tgt["detail"]["status_word3"] & 0x10
    # a reconnect with close allowed: armed until the customer presses the button
    close = await rig.command("relay_close_allowed", [target])
    armed = await rig.state_of(close, "armed", "executed", "failed", "expired")
    assert armed["state"] == "armed", armed
    assert fleet.control.relay(target)["relay"] == "armed"
    assert fleet.control.press_button(target)["relay"] == "closed"
    await rig.gateway.events_job()  # the sweep that sees the relay closed (also scheduled)
    done = await rig.state_of(close, "executed", "failed", "expired")
    assert done["state"] == "executed" and done["targets"][0]["detail"]["by"] == "customer"

    # every command went out signed, and only after the broker confirmed it
    sent = signed_commands(rig.engine)
    assert {c.id.split(".")[0] for c in sent} >= {read, trip, close}
    for command in sent:
        check_signature(rig.keys, command)
    assert json.loads((await api.get("/healthz")).text)["dispatcher"] is True
