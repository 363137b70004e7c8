"""The full path: simulator → gateway (RS-485 over TCP) → mosquitto → head-end ingest → analytics.

The simulated meters keep 62 days of daily freezes, so a bypass that started 3½ days ago is
already in their history: the gateway's start-up back-fill reads the last week of freezes, the
head-end ingests them from a real broker, and the analytics find the bypassed meter.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.config import parse_config
from gateway.daemon.app import Gateway
from headend.analytics.model import boundary
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading
from headend.db.analytics_tables import analytics_lineloss, analytics_suspects
from headend.db.migrate import upgrade
from headend.db.tables import readings
from headend.ingest.service import IngestService
from simulators.fleet import start_fleet
from tests.integration.analytics_support import GW, Z, fleet_doc, seed_archive, truth_rate

pytestmark = pytest.mark.integration
THIEF = "202611240002"
DAYS = 6


def gateway_config(fleet, broker, data_dir: Path):
    doc = {
        "gateway_id": GW,
        "data_dir": str(data_dir),
        "broker": {"host": broker.host, "port": broker.port},
        "schedule": {"energy_minutes": 60, "events_minutes": 0, "backfill_days": DAYS + 1},
        "clock_trust": {"source": "trusted"},
        "signatures": {"required": False},  # a test bench: no head-end keys, no commands
        "buses": [
            {"name": "bus1", "port": fleet.endpoints["bus1"], "baud": 9600, "parity": "E",
             "response_timeout_ms": 300, "retries": 1}
        ],
        "meters": [
            {"id": i, "bus": "bus1", "protocol": "dlt645-2007", "address": i, "role": m.spec.role}
            for i, m in fleet.meters.items()
        ],
    }  # fmt: skip
    return parse_config(doc, Path("analytics-gateway.toml"))


async def wait_for(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_bypass_found_through_gateway_broker_and_ingest(mosquitto, tmp_path):
    now = datetime.now(UTC)
    bypass_at = (now - timedelta(days=3, hours=12)).astimezone(Z)
    doc = fleet_doc(
        {THIEF: [{"kind": "bypass", "at": bypass_at.isoformat(), "fraction": 0.5}]}, customers=5
    )
    db = DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    engine = make_engine(db)
    upgrade(engine)
    settings = Settings(
        database=db,
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-analytics"),
        ingest=IngestSettings(outbox_interval=0.1),
    )
    async with start_fleet(doc) as fleet:
        seed_archive(engine, fleet)
        ingest = IngestService(engine, settings)
        ingest.start()
        gateway = Gateway(
            gateway_config(fleet, mosquitto, tmp_path / "gw"), config_path=tmp_path / "g.toml"
        )
        await gateway.start()
        today = now.astimezone(Z).date()
        want = len(fleet.meters) * (DAYS + 1)

        def frozen_stored() -> bool:
            with engine.connect() as conn:
                n = conn.execute(
                    select(func.count())
                    .select_from(readings)
                    .where(
                        readings.c.kind == "daily_frozen",
                        readings.c.quantity == "energy.active.import.total",
                        readings.c.time >= boundary(today - timedelta(days=DAYS), Z),
                    )
                ).scalar_one()
            return int(n) >= want

        try:
            await wait_for("a week of freezes at the head-end", frozen_stored)
        finally:
            await gateway.stop()
            ingest.stop()
        first, last = today - timedelta(days=DAYS), today - timedelta(days=1)
        await asyncio.to_thread(recompute, engine, AnalyticsSettings(), first, last, now)
        with reading(engine) as conn:
            rows = conn.execute(
                select(analytics_lineloss).where(analytics_lineloss.c.period == "day")
            ).all()
            ranked = conn.execute(
                select(analytics_suspects).order_by(analytics_suspects.c.rank)
            ).all()
        assert len(rows) == DAYS
        for r in rows:
            truth, _ = truth_rate(fleet, datetime.fromisoformat(r.start).date())
            assert r.rate is not None and abs(float(r.rate) - truth) < 0.005, r.start
            assert r.coverage == "1.0000" and r.method == "daily_frozen"
        assert ranked and ranked[0].meter == THIEF
    engine.dispose()
