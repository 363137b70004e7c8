"""Prepayment's automatic disconnect of an ESAM meter goes through the secured flow.

The prepayment jobs, guard rails and commands service are unchanged; the dispatcher sees that
the meter is flagged ``esam`` and runs authenticate → sealed control against a simulated
cost-control meter (software ESAM sharing the laboratory key file with the head-end).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from headend.commands.dispatcher import Dispatcher
from headend.commands.ingest import on_result
from headend.commands.settings import FlowSettings
from headend.db import writing
from headend.db.tables import meters
from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
from protocols.uplink import Command, decode_message
from simulators.esam import SoftwareEsam
from simulators.meter import Meter, MeterSpec, Relay
from tests.headend.test_commands_secured import Gateway
from tests.headend.test_prepay_support import local
from tests.headend.test_reminder_disconnect import _owing_world

ADDRESS = "000000000001"  # m1 in seed_meters


def test_prepay_disconnect_of_an_esam_meter_is_secured(engine, tmp_path):
    key = tmp_path / "esam.key"
    create_key_file(key)
    world = _owing_world(engine, start=local(2026, 3, 10, 22))  # refused at night first
    with writing(engine) as conn:
        conn.execute(update(meters).where(meters.c.id == "m1").values(esam=True))
    world.tick(1, kwh="0")
    assert world.commands() == []  # the window guard rail holds, as for any meter
    world.tick(9, kwh="0")  # → 08:00 Wednesday
    [cmd] = world.commands()
    assert cmd.action == "relay_trip" and cmd.created_by == "prepay"
    meter = Meter(MeterSpec(address=ADDRESS), world.clock.now().timestamp() - 3600)
    gateway = Gateway(meter, SoftwareEsam(read_key_file(key), ADDRESS))
    sent: list[tuple[str, bytes]] = []
    dispatcher = Dispatcher(
        engine,
        lambda topic, payload: sent.append((topic, payload)),
        world.clock,
        world.jobs.ctx.guards,
        encryption=SoftwareEncryptionService(key),
        flow=FlowSettings(),
    )
    kinds = []
    for _ in range(6):
        dispatcher.run_once()
        batch, sent[:] = list(sent), []
        for topic, payload in batch:
            gw, _, command = decode_message(topic, payload)
            assert isinstance(command, Command)
            kinds.append(command.params.get("esam", {}).get("step", "plaintext"))
            result = gateway.execute(command, world.clock.now())
            assert result is not None  # nothing went out in plaintext
            with writing(engine) as conn:
                on_result(conn, gw, result)
        world.clock.current += timedelta(seconds=2)
    assert kinds == ["authenticate", "control"]
    assert meter.relay(world.clock.now().timestamp()) is Relay.OPEN
    world.tick(1, kwh="0")
    assert world.account().supply == "off"
