"""Neutral current end to end: simulator → gateway (RS-485 over TCP) → mosquitto → ingest → rule.

A single-phase customer with its live terminal jumpered (neutral bypass, 40 % registered): the
meter's live current is 40 % of the load's, its neutral current the whole.  The gateway's
instantaneous sweep reads 02800001 (neutral current) from customer meters, the head-end stores
it as ``current.n`` and the suspects' neutral/live imbalance rule finds the meter — and not its
honest neighbour, whose two currents agree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.config import parse_config as gateway_config
from gateway.daemon.app import Gateway
from gateway.polling import Group
from headend.analytics import series
from headend.analytics.intervals import neutral_evidence
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading
from headend.db.migrate import upgrade
from headend.db.tables import readings
from headend.ingest.service import IngestService
from simulators.config import parse_config as fleet_config
from simulators.fleet import start_fleet
from tests.integration.analytics_support import AREA, GW, TOTAL, seed_archive
from tests.integration.test_analytics_fullpath import wait_for

pytestmark = pytest.mark.integration
THIEF, HONEST = "202611240001", "202611240002"
SWEEPS = 5


def fleet_doc(at: datetime):
    meters = [
        {"bus": "bus1", "protocol": "dlt645-2007", "address": a, "profile": "residential",
         "mean_kw": 3.0, "seed": 20 + n, "response_delay_ms": 5, "scenarios": s}
        for n, (a, s) in enumerate((
            (THIEF, [{"kind": "neutral_bypass", "at": at.isoformat(), "fraction": 0.4}]),
            (HONEST, []),
        ))
    ]  # fmt: skip
    meters.append({"bus": "bus1", "protocol": "dlt645-2007", "address": TOTAL,
                   "role": "area_total", "response_delay_ms": 5})  # fmt: skip
    return fleet_config(
        {"areas": [{"name": AREA, "gateway_id": GW, "technical_loss": 0.04}],
         "buses": [{"name": "bus1", "area": AREA, "baud": 9600, "pace": False}],
         "meters": meters},
        "neutral test fleet",
    )  # fmt: skip


async def test_neutral_bypass_found_from_the_meters_neutral_current(mosquitto, tmp_path: Path):
    now = datetime.now(UTC)
    db = DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    engine = make_engine(db)
    upgrade(engine)
    settings = Settings(
        database=db,
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-neutral"),
        ingest=IngestSettings(outbox_interval=0.1),
    )
    async with start_fleet(fleet_doc(now - timedelta(days=2))) as fleet:
        seed_archive(engine, fleet)
        ingest = IngestService(engine, settings)
        ingest.start()
        config = gateway_config(
            {"gateway_id": GW, "data_dir": str(tmp_path / "gw"),
             "broker": {"host": mosquitto.host, "port": mosquitto.port},
             "schedule": {"energy_minutes": 60, "events_minutes": 0, "backfill_days": 0},
             "clock_trust": {"source": "trusted"}, "signatures": {"required": False},
             "buses": [{"name": "bus1", "port": fleet.endpoints["bus1"], "baud": 9600,
                        "parity": "E", "response_timeout_ms": 300, "retries": 1}],
             "meters": [{"id": i, "bus": "bus1", "protocol": "dlt645-2007", "address": i,
                         "role": m.spec.role} for i, m in fleet.meters.items()]},
            Path("neutral-gateway.toml"),
        )  # fmt: skip
        gateway = Gateway(config, config_path=tmp_path / "g.toml")
        await gateway.start()

        def neutral_stored() -> bool:
            with engine.connect() as conn:
                n = conn.execute(
                    select(func.count())
                    .select_from(readings)
                    .where(readings.c.quantity == "current.n", readings.c.meter == THIEF)
                ).scalar_one()
            return int(n) >= SWEEPS

        try:
            assert gateway.poller is not None
            for _ in range(SWEEPS):  # a second apart: one reading per slot of a 1 s step
                report = await gateway.poller.sweep(Group.INSTANT)
                assert report.failed == 0
                await asyncio.sleep(1.1)
            await wait_for("the neutral currents at the head-end", neutral_stored)
        finally:
            await gateway.stop()
            ingest.stop()
        # the customer meters were asked for 02800001, the three-phase area total was not
        assert fleet.meters[THIEF].reads["02800001"]
        assert "02800001" not in fleet.meters[TOTAL].reads
    with reading(engine) as conn:  # as the suspects read them: live/neutral pairs aggregated
        counts = series.neutral_counts(
            conn, [THIEF, HONEST], now - timedelta(minutes=5), datetime.now(UTC)
        )
    engine.dispose()
    evidence = neutral_evidence(counts[THIEF])
    assert evidence is not None and evidence.kind == "neutral_imbalance"
    assert abs(float(evidence.details["live_over_neutral"]) - 0.4) < 0.05
    assert counts[HONEST].loaded >= SWEEPS and neutral_evidence(counts[HONEST]) is None
