"""Simulated meters → gateway → mosquitto → head-end ingest → API: every meter's readings arrive.

The fleet and gateway set-up is the gateway's own integration rig (tests/integration/
test_gateway_fleet.py); here the real head-end ingest replaces its stand-in subscriber, so the
gateway's store is emptied by the head-end's own contract acknowledgements.  The gateway is
enrolled as deployed: its uplink signing key comes from ``enrol_gateway`` (registered with the
head-end), and the ingest requires signatures, so everything stored was verified.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from headend.app import create_app
from headend.archive import service as archive
from headend.archive.models import AreaIn, GatewayIn, MeterIn
from headend.auth import users
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine
from headend.db.engine import writing
from headend.db.migrate import upgrade
from headend.ingest.service import IngestService
from headend.security.enrol import enrol_gateway

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
fleet_rig = pytest.importorskip("tests.integration.test_gateway_fleet")


async def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def seed_archive(engine: Any, fleet: Any) -> list[str]:
    now = datetime.now(UTC)
    ids = []
    with writing(engine) as conn:
        archive.create_gateway(conn, GatewayIn(id=fleet_rig.GW), "test", now)
        archive.create_area(conn, AreaIn(id="a1", gateway=fleet_rig.GW), "test", now)
        for ident, meter in fleet.meters.items():
            spec = meter.spec
            modbus = spec.protocol == "modbus"
            archive.create_meter(
                conn,
                MeterIn(
                    id=ident,
                    area="a1",
                    bus=fleet.meter_bus[ident],
                    protocol=spec.protocol,
                    address=ident.split(":")[-1] if modbus else spec.address,
                    model=getattr(spec, "model", None) or None,
                    role=getattr(spec, "role", "customer"),
                ),
                "test",
                now,
            )
            ids.append(ident)
        users.create(conn, "op", "viewer", "op-password-123", actor="test", now=now)
    return ids


async def test_every_simulated_meter_reaches_the_api(
    mosquitto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.daemon.app import Gateway
    from gateway.polling import Group

    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "e" * 48)
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}"),
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-e2e"),
        ingest=IngestSettings(outbox_interval=0.1, require_signatures=True),
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    enrolment = enrol_gateway(
        fleet_rig.GW, broker_dir=tmp_path / "broker", out_dir=tmp_path / "bundles",
        now=datetime.now(UTC), engine=engine,
    )  # fmt: skip
    async with simulators.start_fleet(fleet_rig.fleet_config()) as fleet:
        ids = seed_archive(engine, fleet)
        ingest = IngestService(engine, settings)
        ingest.start()
        cfg = fleet_rig.gateway_config(fleet, mosquitto, tmp_path / "gw")
        key = enrolment.bundle / "gateway-key.pem"
        cfg = cfg.model_copy(
            update={"signatures": cfg.signatures.model_copy(update={"signing_key_file": key})}
        )
        gateway = Gateway(cfg, config_path=tmp_path / "gateway.toml")
        await gateway.start()
        try:
            report = await gateway.poller.sweep(Group.ENERGY)
            assert report.failed == 0 and report.read == len(ids)
            await wait_for(
                lambda: gateway.store.first_unacked() is None,
                "the head-end to acknowledge everything",
            )
            app = create_app(settings, engine=engine, ingest=False)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://headend") as api:
                r = await api.post(
                    "/api/v1/auth/token", data={"username": "op", "password": "op-password-123"}
                )
                api.headers["Authorization"] = "Bearer " + r.json()["access_token"]
                for ident in ids:
                    r = await api.get(
                        f"/api/v1/meters/{ident}/readings",
                        params={"quantity": "energy.active.import.total"},
                    )
                    assert r.status_code == 200, r.text
                    assert len(r.json()["items"]) >= 1, ident
                latest = (await api.get("/api/v1/areas/a1/latest")).json()
                assert latest["read"] == len(ids) and latest["missing"] == []
                archived = await api.get("/api/v1/meters", params={"area": "a1"})
                assert len(archived.json()) == len(ids)
            assert ingest.stats.dead_letters == 0
            assert ingest.stats.by_kind.get("status", 0) >= 1  # the signed birth was accepted
        finally:
            await gateway.stop()
            ingest.stop()
            engine.dispose()
