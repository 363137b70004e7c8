"""Forged command results over the shipped broker config (issue 19, break 4).

Before, ``received``/``executed`` published on ``up/result`` for a new command marked it executed
although it was never sent.  Here the head-end's ingest runs with its own broker identity over
TLS against mosquitto with the shipped config and ACL; a gateway's credentials publish results
for a command that is not sent yet, and another gateway's credentials publish one for a command
of the first; both are refused, and the real result after the real publication is applied.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headend.auth.roles import Role, User
from headend.commands import service
from headend.commands.dispatcher import Dispatcher
from headend.commands.settings import CommandSettings
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.ops_tables import command_dispatches, commands
from headend.guards import GuardSettings
from headend.ingest.service import IngestService
from headend.security.enrol import enrol_gateway, enrol_headend
from protocols.uplink import CommandAction, CommandResult, CommandState, Topics, encode
from taiqu.clock import ManualClock
from tests.headend.ops_support import TUESDAY_10, meter_id, seed_archive
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
HEADEND = "taiqu-headend"


@pytest.fixture(scope="module")
def broker(mosquitto_binary: str) -> Iterator[SecureBroker]:  # noqa: F811
    b = SecureBroker.make(mosquitto_binary)
    b.start()
    yield b
    b.remove()


@pytest.fixture
def rig(broker: SecureBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    passwords = {HEADEND: enrol_headend(HEADEND, broker_dir=broker.broker_dir, replace=True)}
    for gw in ("gw1", "gw2"):
        passwords[gw] = enrol_gateway(
            gw,
            broker_dir=broker.broker_dir,
            out_dir=tmp_path / "bundles",
            now=datetime.now(UTC),
            replace=True,
        ).password
    broker.reload(lambda: all(can_connect(broker, u, p) for u, p in passwords.items()))
    monkeypatch.setenv("TAIQU_HEADEND_MQTT_PASSWORD", passwords[HEADEND])
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"),
        mqtt=MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id=HEADEND,
            username=HEADEND,
            ca_file=broker.ca.cert_path,
        ),
        ingest=IngestSettings(outbox_interval=0.05),
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    seed_archive(engine)
    clock = ManualClock(TUESDAY_10)
    ingest = IngestService(engine, settings, clock)
    ingest.start()
    deadline = time.monotonic() + 20
    while not ingest.connected.is_set():
        assert time.monotonic() < deadline, "the ingest did not connect"
        time.sleep(0.05)
    yield engine, clock, ingest, passwords
    ingest.stop()
    engine.dispose()


def _results_seen(ingest: IngestService, n: int) -> None:
    deadline = time.monotonic() + 20
    while ingest.stats.by_kind.get("result", 0) < n:
        assert time.monotonic() < deadline, f"the ingest saw {ingest.stats.by_kind}"
        time.sleep(0.05)


def _state(engine, command_id: str) -> tuple[str, str, object]:
    with reading(engine) as conn:
        command = conn.execute(select(commands).where(commands.c.id == command_id)).one()
        dispatch = conn.execute(
            select(command_dispatches).where(command_dispatches.c.command_id == command_id)
        ).one()
    return command.state, dispatch.state, command.sent_at


def test_forged_results_are_refused_and_the_real_one_applies(broker, rig) -> None:
    engine, clock, ingest, passwords = rig
    with writing(engine) as conn:
        command_id = service.create(
            conn,
            User("olga", Role.OPERATOR),
            service.CommandRequest(action=CommandAction.RELAY_TRIP, meters=[meter_id("A2", 1)]),
            now=TUESDAY_10,
            guards=GuardSettings(),
            settings=CommandSettings(),
        )
    assert isinstance(command_id, str)
    dispatch_id = f"{command_id}.1"  # to gw2 (area A2)
    owner = Client(broker, "gw2", passwords["gw2"])
    other = Client(broker, "gw1", passwords["gw1"])
    for c in (owner, other):
        c.connect()
        assert c.accepted
    at = TUESDAY_10
    for state in (CommandState.RECEIVED, CommandState.EXECUTED):  # the owner's id, never sent
        forged = CommandResult(id=dispatch_id, gateway="gw2", state=state, at=at)
        owner.publish(Topics("gw2").result, encode(forged))
    stranger = CommandResult(id=dispatch_id, gateway="gw1", state=CommandState.EXECUTED, at=at)
    other.publish(Topics("gw1").result, encode(stranger))  # another gateway's command
    _results_seen(ingest, 3)
    assert _state(engine, command_id) == ("approved", "approved", None)

    clock.advance(1)
    sent: list[str] = []
    Dispatcher(engine, lambda t, p: sent.append(t), clock, GuardSettings()).run_once()
    assert sent == [Topics("gw2").cmd]
    real = CommandResult(
        id=dispatch_id,
        gateway="gw2",
        state=CommandState.EXECUTED,
        at=clock.now(),
        meter=meter_id("A2", 1),
    )
    owner.publish(Topics("gw2").result, encode(real))
    _results_seen(ingest, 4)
    state, dispatch_state, sent_at = _state(engine, command_id)
    assert (state, dispatch_state) == ("executed", "executed") and sent_at is not None
    for c in (owner, other):
        c.close()
