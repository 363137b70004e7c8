"""Secured (ESAM) vs plaintext relay trip through the head-end, in process (no MQTT, no gateway).

What it measures: the head-end's share of a trip — command created (commands service, SQLite) →
dispatcher pass(es) → a minimal gateway executor (``protocols.uplink.secured`` helpers) talking
DL/T 645 frames to a simulated meter → results through the ingest's handler → target executed with
the relay read back.  The secured trip adds an authentication round trip, the encryption service
(laboratory SM4 service) and two more dispatcher passes; the baseline of the same run is the
plaintext trip of a non-ESAM meter through the same path.  Dispatcher passes run back to back:
in ``taiqu headend serve`` each hop also waits up to ``[commands] dispatch_interval`` (1 s), and
the bus and MQTT round trips come on top — the issue's end-to-end goal (p95 < 3 s + the meter's
trip delay on loopback with mosquitto and the real gateway) is ``bench/esam_latency.py``.

    .venv/bin/python bench/esam_flow.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
START = datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from sqlalchemy import insert, update

    from headend.auth.roles import Role, User
    from headend.commands import service
    from headend.commands.dispatcher import Dispatcher
    from headend.commands.ingest import on_result
    from headend.commands.service import CommandRequest
    from headend.commands.settings import CommandSettings, FlowSettings
    from headend.config import DatabaseSettings
    from headend.db import writing
    from headend.db.engine import make_engine
    from headend.db.migrate import upgrade
    from headend.db.ops_tables import command_targets
    from headend.db.tables import areas, meters
    from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
    from headend.guards import GuardSettings
    from protocols.dlt645 import (
        NEED_DATA,
        AbnormalReply,
        ControlAction,
        Master,
        ReadData,
        RemoteControl,
        Version,
    )
    from protocols.uplink import Command, CommandAction, CommandResult, CommandState, decode_message
    from protocols.uplink.secured import parse_step, step_report, step_requests
    from simulators.dlt645.meter import Dlt645Listener
    from simulators.esam import SoftwareEsam
    from simulators.meter import Meter, MeterSpec
    from taiqu.clock import ManualClock

    tmp = Path(tempfile.mkdtemp(prefix="esam-bench-"))
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp / 'bench.db'}"))
    upgrade(engine)
    key = tmp / "esam.key"
    create_key_file(key)
    with writing(engine) as conn:
        conn.execute(insert(areas).values(id="A1", name="A1", gateway="gw1", valid_from=SINCE))
        for n, esam in ((1, True), (2, False)):
            conn.execute(
                insert(meters).values(
                    id=f"m{n}", point=f"P-m{n}", area="A1", bus="bus1",
                    protocol="dlt645-2007", address=f"{n:012d}", esam=esam, valid_from=SINCE,
                )
            )  # fmt: skip
    clock = ManualClock(START)
    published: list[tuple[str, bytes]] = []
    guards = GuardSettings(hourly_limit_area=10_000, hourly_limit_fleet=10_000)
    dispatcher = Dispatcher(
        engine,
        lambda topic, payload: published.append((topic, payload)),
        clock,
        guards,
        CommandSettings(),
        encryption=SoftwareEncryptionService(key),
        flow=FlowSettings(),
    )
    origin = START.timestamp() - 3600
    bus = {f"{n:012d}": Meter(MeterSpec(address=f"{n:012d}"), origin) for n in (1, 2)}
    listener = Dlt645Listener(Version.V2007, bus.values())
    listener.add_esam(SoftwareEsam(read_key_file(key), "000000000001"))
    master = Master(preamble=0)
    address = {"m1": "000000000001", "m2": "000000000002"}
    user = User("bench", Role.SUPERVISOR)

    def ask(request, ts):
        answers = listener.feed(master.send(request), ts)
        master.receive_data(answers[0].data)
        reply = master.next_event()
        assert reply is not NEED_DATA
        return reply

    def gateway(command: Command) -> CommandResult:
        """The executor: a step via the secured helpers, or the plaintext control."""
        meter = command.meters[0]
        ts = clock.now().timestamp()
        step = parse_step(command.params)
        if step is None:
            n1 = (
                ControlAction.TRIP
                if command.action is CommandAction.RELAY_TRIP
                else (ControlAction.CLOSE_DIRECT)
            )
            until = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
            reply = ask(
                RemoteControl(address[meter], n1, valid_until=until + timedelta(minutes=5)), ts
            )
            state = (
                CommandState.FAILED if isinstance(reply, AbnormalReply) else CommandState.EXECUTED
            )
            detail: dict[str, object] = {}
        else:
            replies = []
            for request in step_requests(step, address[meter]):
                replies.append(reply := ask(request, ts))
                if isinstance(reply, AbnormalReply):
                    break
            state, _, report = step_report(step, replies)
            detail = {"esam": report.model_dump(mode="json")}
        if state is CommandState.EXECUTED and (step is None or step.step == "control"):
            ask(ReadData(address[meter], 0x04000503), ts)
            detail["relay"] = bus[address[meter]].relay(ts).value
        return CommandResult(
            id=command.id, gateway="gw1", state=state, at=clock.now(), meter=meter, detail=detail
        )

    def trip(meter: str, action: CommandAction) -> tuple[float, int]:
        started = time.perf_counter()
        with writing(engine) as conn:
            command_id = service.create(
                conn, user, CommandRequest(action, meters=[meter]),
                now=clock.now(), guards=guards, settings=CommandSettings(),
            )  # fmt: skip
        assert isinstance(command_id, str), command_id
        hops = 0
        for _ in range(10):
            dispatcher.run_once()
            hops += 1
            batch, published[:] = list(published), []
            for topic, payload in batch:
                _, _, command = decode_message(topic, payload)
                result = gateway(command)
                with writing(engine) as conn:
                    on_result(conn, "gw1", result)
            with engine.connect() as conn:
                state = (
                    conn.execute(
                        command_targets.select().where(command_targets.c.command_id == command_id)
                    )
                    .one()
                    .state
                )
            if state in ("executed", "failed"):
                assert state == "executed", state
                break
        clock.advance(1)
        return time.perf_counter() - started, hops

    results: dict[str, list[float]] = {"plaintext": [], "secured": []}
    passes: dict[str, int] = {}
    for i in range(args.runs):
        action = CommandAction.RELAY_TRIP if i % 2 == 0 else CommandAction.RELAY_CLOSE_DIRECT
        for name, meter in (("plaintext", "m2"), ("secured", "m1")):
            seconds, hops = trip(meter, action)
            results[name].append(seconds)
            passes[name] = hops
    with writing(engine) as conn:
        conn.execute(update(meters).values(esam=False))
    base = statistics.median(results["plaintext"])
    print(f"{args.runs} runs each (trip and close alternating), SQLite, in process")
    for name, values in results.items():
        values.sort()
        p50 = statistics.median(values)
        p95 = values[max(0, round(0.95 * len(values)) - 1)]
        print(
            f"{name:>9}: p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
            f"dispatcher passes {passes[name]}  ratio p50 {p50 / base:4.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
