"""Fixtures of the gateway tests: a manual clock, a fresh store, sweeps of synthetic readings."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.store import Store
from protocols.model import Reading, ReadingKind
from protocols.quantities import ENERGY_TARIFFS, ENERGY_TOTAL
from protocols.uplink import Ack, Batch, GapRecord, Status, decode_message, encode
from protocols.uplink.topics import HEADEND_UP, Topics
from taiqu.clock import ManualClock

START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def meter_ids(count: int) -> list[str]:
    """DL/T 645-style 12-digit addresses."""
    return [f"2026112{n:05d}" for n in range(1, count + 1)]


def sweep(meters: list[str], at: datetime, *, base: int = 0) -> list[Reading]:
    """One energy sweep: total and four tariffs per meter, as the poller produces it."""
    out = []
    for i, meter in enumerate(meters):
        total = Decimal(1000 + base + i) + Decimal("0.25")
        values = [total] + [total / 4 for _ in ENERGY_TARIFFS]
        for name, value in zip((ENERGY_TOTAL, *ENERGY_TARIFFS), values, strict=True):
            out.append(
                Reading(
                    meter=meter,
                    quantity=name,
                    value=value.quantize(Decimal("0.01")),
                    gateway_time=at + timedelta(seconds=i),
                    meter_time=at + timedelta(seconds=i - 2),
                )
            )
    return out


def frozen(meter: str, freeze_time: datetime) -> list[Reading]:
    """A daily frozen record of one meter."""
    return [
        Reading(
            meter=meter,
            quantity=ENERGY_TOTAL,
            value=Decimal("1234.50"),
            gateway_time=freeze_time + timedelta(minutes=5),
            kind=ReadingKind.DAILY_FROZEN,
            freeze_time=freeze_time,
        )
    ]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = Store.open(tmp_path / "store.db", clock=clock)
    yield s
    s.close()


# -- a fake head-end on a real broker -----------------------------------------------------------


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Wait for ``predicate`` to hold, checking often; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@dataclass
class Arrival:
    seq: int
    body: str
    resend: bool


@dataclass
class FakeHeadEnd:
    """Subscribes to every gateway's up/#, keeps (epoch, seq) → record, acks what it holds."""

    port: int
    acking: bool = True
    arrivals: list[Arrival] = field(default_factory=list)
    stored: dict[tuple[str, int], str] = field(default_factory=dict)
    accounted: dict[str, set[int]] = field(default_factory=dict)
    statuses: list[tuple[Status, bool]] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: mqtt.Client | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"headend-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        client.reconnect_delay_set(1, 1)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(HEADEND_UP, qos=1)
        client.on_subscribe = lambda *a: self.subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", self.port, 30)
        client.loop_start()
        self.client = client
        if not self.subscribed.wait(10):
            raise TimeoutError("fake head-end did not subscribe")

    def stop(self) -> None:
        if self.client:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        gateway, _kind, msg = decode_message(message.topic, bytes(message.payload))
        with self.lock:
            if isinstance(msg, Status):
                self.statuses.append((msg, bool(message.retain)))
                return
            if not isinstance(msg, Batch):
                return
            self.batches.append(msg)
            seen = self.accounted.setdefault(msg.epoch, set())
            for i, record in enumerate(msg.records):
                body = record.model_dump_json(by_alias=True, exclude_none=True)
                seq = msg.seq + i
                self.arrivals.append(Arrival(seq, body, msg.resend))
                if self.stored.setdefault((msg.epoch, seq), body) != body:
                    self.conflicts.append(seq)  # a duplicate must be the very same record
                seen.add(seq)
                if isinstance(record, GapRecord):
                    seen.update(range(record.first, record.last + 1))
            acking = self.acking
            ack = self._ack(msg.epoch)
        if acking:
            client.publish(Topics(gateway).ack, encode(ack), qos=1)

    def _ack(self, epoch: str) -> Ack:
        seen = self.accounted[epoch]
        upto = 0
        while upto + 1 in seen:
            upto += 1
        beyond = sorted(s for s in seen if s > upto)
        ranges: list[tuple[int, int]] = []
        for s in beyond:
            if ranges and ranges[-1][1] == s - 1:
                ranges[-1] = (ranges[-1][0], s)
            else:
                ranges.append((s, s))
        return Ack(epoch=epoch, upto=upto, ranges=tuple(ranges))

    def ack_now(self, gateway: str, epoch: str) -> None:
        """Publish the current acknowledgement (after a period of not acking)."""
        with self.lock:
            ack = self._ack(epoch)
        assert self.client is not None
        self.client.publish(Topics(gateway).ack, encode(ack), qos=1)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.client is not None
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def seqs(self, epoch: str) -> set[int]:
        with self.lock:
            return {s for (e, s) in self.stored if e == epoch}

    def first_arrival_order(self) -> list[int]:
        with self.lock:
            seen: set[int] = set()
            out = []
            for a in self.arrivals:
                if a.seq not in seen:
                    seen.add(a.seq)
                    out.append(a.seq)
            return out


@pytest.fixture
def headend(mosquitto) -> Iterator[FakeHeadEnd]:
    he = FakeHeadEnd(mosquitto.port)
    he.start()
    yield he
    he.stop()
