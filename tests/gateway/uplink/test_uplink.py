"""The uplink against a real mosquitto and a fake head-end: nothing lost, order kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.store import Store
from gateway.uplink import BrokerSettings, Uplink, UplinkSettings
from protocols.uplink import Command, ResendRequest, Topics, encode
from taiqu.clock import RealClock
from tests.gateway.conftest import START, FakeHeadEnd, meter_ids, sweep, until

pytestmark = pytest.mark.integration
GW = "gw-test-1"
ROOT = Path(__file__).resolve().parents[3]
FAST = UplinkSettings(
    batch_records=40, window=3, ack_timeout=1.5, ack_timeout_max=3, poll_interval=0.5,
    reconnect_min=1, reconnect_max=1, stop_timeout=2,
)  # fmt: skip


@pytest.fixture
def real_store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store.db", clock=RealClock())


@pytest.fixture
async def uplink(mosquitto, real_store: Store) -> AsyncIterator[Uplink]:
    commands: list[Command] = []
    up = Uplink(
        GW, BrokerSettings(port=mosquitto.port), real_store, RealClock(),
        software_version="0.1.0", config_hash="abc", archive_version_fn=lambda: 3,
        on_command=commands.append, settings=FAST,
    )  # fmt: skip
    up.commands = commands  # type: ignore[attr-defined]
    await up.start()
    await up.wait_connected(10)
    yield up
    await up.stop()
    real_store.close()


def append_sweeps(store: Store, count: int, meters: int = 10, start: int = 0) -> int:
    last = 0
    for n in range(start, start + count):
        last = store.append_readings(sweep(meter_ids(meters), START + timedelta(minutes=15 * n)))
    return last


def check_delivery(he: FakeHeadEnd, store: Store) -> None:
    """Every seq delivered once or more, identical each time, first arrivals in order."""
    last = store.last_seq
    assert he.seqs(store.epoch) == set(range(1, last + 1))
    assert he.conflicts == []
    order = he.first_arrival_order()
    assert order == sorted(order)
    for row in store.records(1, last):
        assert he.stored[(store.epoch, row.seq)] == row.body.decode()


async def test_drains_in_order_and_acks_come_from_the_head_end(
    uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    last = append_sweeps(real_store, 12)  # 120 records: several batches through the window
    await until(lambda: real_store.stats().unacked == 0, what="every record acknowledged")
    check_delivery(headend, real_store)
    assert all(len(b.records) <= FAST.batch_records for b in headend.batches)
    assert all(not b.resend for b in headend.batches)
    stats = real_store.stats()
    assert stats.acked_upto == last and stats.records == last  # acknowledged, kept until the budget
    births = [s for s, retained in headend.statuses if s.state == "online"]
    assert births and births[0].epoch == real_store.epoch and births[0].archive_version == 3


async def test_silent_head_end_gets_re_sends_and_the_window_holds_the_rest(
    uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    headend.acking = False
    append_sweeps(real_store, 20)  # 200 records, window holds 3 × 40
    await until(
        lambda: len(headend.arrivals) > len(headend.seqs(real_store.epoch)), what="re-sends"
    )
    window_records = FAST.window * FAST.batch_records
    assert max(headend.seqs(real_store.epoch)) <= window_records  # backpressure
    assert real_store.stats().unacked == 200  # a broker PUBACK deletes nothing
    headend.acking = True
    headend.ack_now(GW, real_store.epoch)
    await until(lambda: real_store.stats().unacked == 0, what="drain after acks resume")
    check_delivery(headend, real_store)
    assert uplink.counters["rewinds"] >= 1


async def test_broker_stop_and_restart_loses_nothing(
    mosquitto, uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    append_sweeps(real_store, 3)
    await until(lambda: real_store.stats().unacked == 0)
    mosquitto.stop()
    await until(lambda: not uplink.connected, what="disconnect noticed")
    append_sweeps(real_store, 6, start=3)  # written during the outage: the store holds them
    await asyncio.sleep(0)  # the drain runs while disconnected and must not lose anything
    mosquitto.start()
    await uplink.wait_connected(15)
    append_sweeps(real_store, 3, start=9)
    await until(lambda: real_store.stats().unacked == 0, timeout=30, what="drain after restart")
    check_delivery(headend, real_store)
    assert uplink.counters["connects"] >= 2


async def test_resend_requests_are_served_from_the_store(
    uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    append_sweeps(real_store, 3)
    await until(lambda: real_store.stats().unacked == 0)
    request = ResendRequest(epoch=real_store.epoch, first=5, last=12)
    headend.publish(Topics(GW).resend, encode(request))
    await until(lambda: any(b.resend for b in headend.batches), what="re-sent batch")
    resent = [a for a in headend.arrivals if a.resend]
    assert sorted(a.seq for a in resent) == list(range(5, 13))
    check_delivery(headend, real_store)
    # a request for another epoch is ignored
    headend.publish(Topics(GW).resend, encode(ResendRequest(epoch="00" * 8, first=1, last=2)))


async def test_commands_reach_the_daemon_and_garbage_is_counted(
    uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    cmd = Command(
        id="c-1", gateway=GW, action="relay_trip", issued=START, valid_until=START + timedelta(hours=1),
        nonce="0123456789abcdef", meters=("202611200001",),
    )  # fmt: skip
    headend.publish(Topics(GW).ack, b"\x00garbage")
    headend.publish(Topics(GW).cmd, encode(cmd))
    await until(lambda: uplink.commands == [cmd], what="command delivered")  # type: ignore[attr-defined]
    assert uplink.counters["bad_payloads"] == 1
    append_sweeps(real_store, 1)  # and the uplink still works
    await until(lambda: real_store.stats().unacked == 0)


async def test_a_deeply_nested_payload_does_not_stop_the_inbox(
    uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    """Found by review: ``[[[[…`` a million deep (a broker attacker's publish on ``down/``) made
    ``json.loads`` raise RecursionError, which ended the inbox task silently: no Ack, command or
    archive push was read again until a restart, and the unacknowledged store only grew."""
    nested = b'{"v":1,"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    headend.publish(Topics(GW).ack, nested)
    headend.publish(Topics(GW).cmd, nested)
    cmd = Command(
        id="c-2", gateway=GW, action="relay_trip", issued=START, valid_until=START + timedelta(hours=1),
        nonce="0123456789abcdef", meters=("202611200001",),
    )  # fmt: skip
    headend.publish(Topics(GW).cmd, encode(cmd))
    await until(lambda: uplink.commands == [cmd], what="command delivered")  # type: ignore[attr-defined]
    assert uplink.counters["bad_payloads"] == 2
    append_sweeps(real_store, 1)  # and Acks are still applied
    await until(lambda: real_store.stats().unacked == 0)


async def test_clean_stop_leaves_a_retained_offline_status(
    mosquitto, real_store: Store, headend: FakeHeadEnd
) -> None:
    up = Uplink(GW, BrokerSettings(port=mosquitto.port), real_store, RealClock(), settings=FAST)
    await up.start()
    await up.wait_connected(10)
    assert up.publish_status({"meters_ok": 5})
    await until(lambda: any(s.health.get("meters_ok") == 5 for s, _ in headend.statuses))
    await up.stop()
    await until(lambda: headend.statuses[-1][0].state == "offline", what="offline status")
    real_store.close()


UPLINK_CHILD = r"""
import asyncio, sys
from pathlib import Path
from gateway.store import Store
from gateway.uplink import BrokerSettings, Uplink
from taiqu.clock import RealClock

async def main():
    store = Store.open(Path(sys.argv[1]), clock=RealClock())
    up = Uplink("gw-will", BrokerSettings(port=int(sys.argv[2])), store, RealClock())
    await up.start()
    await up.wait_connected(10)
    print("up", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_kill_dash_nine_publishes_the_retained_last_will(
    mosquitto, tmp_path: Path, headend: FakeHeadEnd
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", UPLINK_CHILD, str(tmp_path / "s.db"), str(mosquitto.port)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "up\n"
        await until(
            lambda: any(s.state == "online" and s.gateway == "gw-will" for s, _ in headend.statuses)
        )
        child.send_signal(signal.SIGKILL)
        await until(lambda: headend.statuses[-1][0].state == "offline", what="last will")
        will = headend.statuses[-1][0]
        assert will.gateway == "gw-will" and will.time is None and will.epoch
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_outage_during_continuous_writes_loses_nothing(
    outage: str, mosquitto, uplink: Uplink, real_store: Store, headend: FakeHeadEnd
) -> None:
    """Sweeps keep coming while the broker goes away mid-flight (a kill loses its unsaved state)."""

    async def writer() -> None:
        for n in range(40):
            await asyncio.to_thread(append_sweeps, real_store, 1, 10, n)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(writer())
    await until(lambda: len(headend.arrivals) >= 50, what="traffic flowing")
    mosquitto.kill() if outage == "kill" else mosquitto.stop()
    await until(lambda: not uplink.connected, what="disconnect noticed")
    await asyncio.sleep(0.5)  # an outage of a few seconds, as the issue asks (not a wait-for)
    mosquitto.start()
    await task
    await until(lambda: real_store.stats().unacked == 0, timeout=40, what="drain after outage")
    check_delivery(headend, real_store)
    assert real_store.last_seq == 400
