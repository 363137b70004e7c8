"""Load generator speaking the MQTT contract: G gateways × M meters, 15-minute readings, fast clock.

Each simulated gateway has its own epoch and gap-free seq, publishes one ``up/data`` Batch per
15-minute interval (one ReadingRecord per meter, Q cumulative quantities each) at QoS 1, keeps
every batch until the head-end's contract ``Ack`` covers it, and serves ``ResendRequest``s from
what it kept (``resend: true``) and re-publishes what stays unacknowledged for ``--ack-timeout``
seconds (the gateway's rewind), as a real gateway's store does.  It does not emulate buses.

The clock is accelerated: interval k starts at wall time ``k × 900 / factor`` (``sent`` carries
the simulated time) and the gateways' batches are spread over ``--spread`` of the interval, as
real gateways finish their bus cycles at different moments (0: every gateway at once).
Gateways are spread over ``--connections`` MQTT clients, each
subscribed to its own gateways' ``down/ack`` and ``down/resend``.  ``--skip`` holds back every
N-th batch until the head-end asks for it (exercises gap detection and re-send).

At the end it prints one JSON object: what was generated, what was acked, re-sends served, and
publish→Ack delays (the Ack is published right after the commit, so this bounds MQTT-to-database
delay from above).

    .venv/bin/python bench/loadgen.py --port 1883 --gateways 1000 --meters 200 --hours 2
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from protocols.model import ReadingKind  # noqa: E402
from protocols.uplink import Ack, Batch, ReadingRecord, ResendRequest, decode, encode  # noqa: E402
from protocols.uplink.topics import Topics  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
QUANTITY_NAMES = (
    "energy.active.import.total",
    "energy.active.import.t1",
    "energy.active.import.t2",
    "energy.active.import.t3",
    "energy.active.import.t4",
)


def gateway_id(g: int) -> str:
    return f"lg-{g:05d}"


def meter_id(g: int, m: int) -> str:
    return f"9{g:05d}{m:06d}"


@dataclass
class GatewaySim:
    """One gateway's outbox: batches kept until acknowledged."""

    gw: str
    index: int
    epoch: str
    next_seq: int = 1
    kept: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # first seq → (last, body)
    sent_at: dict[int, float] = field(default_factory=dict)  # first seq → wall time published
    last_pub: dict[int, float] = field(default_factory=dict)  # first seq → last (re)publish
    held_back: dict[int, bytes] = field(default_factory=dict)  # --skip: not yet published
    acked_upto: int = 0
    delays: list[float] = field(default_factory=list)
    resends: int = 0


class LoadGen:
    """Publishes the fleet's intervals on an accelerated clock and tracks acknowledgements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.gateways = [
            GatewaySim(gateway_id(g), g, f"{(g * 2654435761) % 2**64:016x}")
            for g in range(args.gateways)
        ]
        self.clients: list[mqtt.Client] = []
        for c in range(args.connections):
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=f"loadgen-{args.tag}-{c}", clean_session=True
            )
            client.max_inflight_messages_set(args.inflight)
            client.max_queued_messages_set(0)
            client.on_message = self._on_message
            client.connect(args.host, args.port, 60)
            client.loop_start()
            mine = self.gateways[c :: args.connections]
            for i in range(0, len(mine), 100):
                subs = [(f"taiqu/v1/{g.gw}/down/+", 1) for g in mine[i : i + 100]]
                client.subscribe(subs)
            self.clients.append(client)
        self.by_gw = {g.gw: g for g in self.gateways}
        self.published_batches = 0
        self.acks = 0
        self.rewinds = 0

    def client_of(self, g: GatewaySim) -> mqtt.Client:
        return self.clients[g.index % len(self.clients)]

    def batch(self, g: GatewaySim, step: int) -> tuple[int, int, bytes]:
        at = START + INTERVAL * step
        names = QUANTITY_NAMES[: self.args.quantities]
        records = []
        for m in range(self.args.meters):
            base = (g.index * 7 + m) % 5000 + step * 0.25
            values: dict[str, str | int] = {q: f"{base + i:.2f}" for i, q in enumerate(names)}
            records.append(
                ReadingRecord(
                    meter=meter_id(g.index, m),
                    kind=ReadingKind.INTERVAL,
                    gateway_time=at,
                    meter_time=at,
                    values=values,
                )
            )
        first = g.next_seq
        g.next_seq += len(records)
        body = Batch(gateway=g.gw, epoch=g.epoch, seq=first, sent=at, records=tuple(records))
        return first, first + len(records) - 1, encode(body)

    def publish_interval(self, step: int, due: float, period: float) -> None:
        skip = self.args.skip
        for g in self.gateways:
            # gateways finish their bus cycles at different moments: spread over the interval
            at = due + period * self.args.spread * g.index / len(self.gateways)
            if (wait := at - time.time()) > 0:
                time.sleep(wait)
            first, last, body = self.batch(g, step)
            with self.lock:
                g.kept[first] = (last, body)
                if skip and (g.index + step) % skip == 0 and 0 < step < self.args.intervals - 1:
                    g.held_back[first] = body
                    continue
                g.sent_at[first] = g.last_pub[first] = time.time()
            self.client_of(g).publish(Topics(g.gw).data, body, qos=1)
            self.published_batches += 1

    # --- paho threads -------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        g = self.by_gw.get(parts[2])
        if g is None:
            return
        now = time.time()
        if parts[-1] == "ack":
            ack = decode(bytes(msg.payload), Ack)
            if ack.epoch != g.epoch:
                return
            with self.lock:
                self.acks += 1
                spans = [(0, ack.upto), *ack.ranges]
                for first in list(g.kept):
                    last, _ = g.kept[first]
                    if any(lo <= first and last <= hi for lo, hi in spans):
                        del g.kept[first]
                        g.last_pub.pop(first, None)
                        sent = g.sent_at.pop(first, None)
                        if sent is not None:
                            g.delays.append(now - sent)
                g.acked_upto = max(g.acked_upto, ack.upto)
        elif parts[-1] == "resend":
            req = decode(bytes(msg.payload), ResendRequest)
            if req.epoch != g.epoch:
                return
            with self.lock:
                todo = []
                for first, (last, body) in g.kept.items():
                    if first <= req.last and last >= req.first:
                        g.held_back.pop(first, None)
                        g.sent_at.setdefault(first, now)
                        g.last_pub[first] = now
                        g.resends += 1
                        todo.append(body)
            for body in todo:  # the whole kept batch again, flagged as a re-send
                again = decode(body, Batch).model_copy(update={"resend": True})
                client.publish(Topics(g.gw).data, encode(again), qos=1)

    def rewind(self) -> int:
        """Re-publish batches unacknowledged for ``ack_timeout`` s, as a gateway does; how many."""
        now = time.time()
        todo = []
        with self.lock:
            for g in self.gateways:
                for first, at in g.last_pub.items():
                    if now - at >= self.args.ack_timeout and first in g.kept:
                        g.last_pub[first] = now
                        todo.append((g, g.kept[first][1]))
        for g, body in todo:
            self.client_of(g).publish(Topics(g.gw).data, body, qos=1)
        self.rewinds += len(todo)
        return len(todo)

    def _rewinder(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.rewind()

    # --- driver -------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        period = 900.0 / self.args.factor
        stop = threading.Event()
        rewinder = threading.Thread(target=self._rewinder, args=(stop,), daemon=True)
        rewinder.start()
        t0 = time.time()
        for step in range(self.args.intervals):
            due = t0 + step * period
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            self.publish_interval(step, due, period)
        published_end = time.time()
        deadline = published_end + self.args.drain
        while time.time() < deadline:
            with self.lock:
                left = sum(len(g.kept) for g in self.gateways)
            if left == 0:
                break
            time.sleep(0.05)
        done = time.time()
        stop.set()
        rewinder.join()
        for client in self.clients:
            client.disconnect()
            client.loop_stop()
        delays = sorted(d for g in self.gateways for d in g.delays)
        records = self.args.gateways * self.args.meters * self.args.intervals
        with self.lock:
            unacked = sum(len(g.kept) for g in self.gateways)
        return {
            "gateways": self.args.gateways,
            "meters": self.args.meters,
            "intervals": self.args.intervals,
            "records": records,
            "readings": records * self.args.quantities,
            "batches_published": self.published_batches,
            "resends_served": sum(g.resends for g in self.gateways),
            "rewinds": self.rewinds,
            "acks": self.acks,
            "unacked_batches": unacked,
            "publish_seconds": published_end - t0,
            "total_seconds": done - t0,
            "delay_p50": _pct(delays, 50),
            "delay_p99": _pct(delays, 99),
            "delay_max": delays[-1] if delays else None,
            "start": t0,
            "end": done,
        }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--quantities", type=int, default=1, choices=range(1, 6))
    parser.add_argument("--hours", type=float, default=2.0, help="simulated hours")
    parser.add_argument("--factor", type=float, default=900.0, help="clock acceleration")
    parser.add_argument(
        "--spread",
        type=float,
        default=0.9,
        help="fraction of an interval the fleet's publishes span",
    )
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument(
        "--ack-timeout", type=float, default=30.0, help="re-publish unacked batches after (s)"
    )
    parser.add_argument("--skip", type=int, default=0, help="hold back every N-th batch")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds to wait for acks")
    parser.add_argument("--tag", default="0")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.intervals = max(1, round(args.hours * 4))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = LoadGen(args).run()
    text = json.dumps(result)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if result["unacked_batches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
