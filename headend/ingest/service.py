"""The ingest service: one MQTT session, one writer thread, acknowledgements after commit.

Threads: paho's network loop receives (``manual_ack=True``, QoS 1, persistent session) and only
queues; one worker thread takes up to ``max_group`` queued messages, stores them in one
transaction, commits, then acknowledges each to the broker (PUBACK) and publishes the contract
``Ack`` (and any ``ResendRequest``).  Each message goes through ``Ingestor.handle``'s steps
(decode and validate → bind and route → write → ack); the group's readings are written by one
statement (``ReadingSink``: binary COPY on PostgreSQL, one executemany on SQLite) just before
the commit.  A kill -9 anywhere before the commit leaves the messages unacknowledged at the
broker, which re-delivers them to the next session; after the commit the stream's runs
(``streams``) make the re-delivery a no-op.  Between groups the worker publishes pending
``mqtt_outbox`` rows and re-asks for open holes.

Failures: a database outage rolls back and retries the same group with back-off (nothing is
acknowledged meanwhile); a message the database refuses on its own is dead-lettered with the
reason, so one bad message never blocks a gateway.  PUBACKs are only sent on the connection that
received the message: after a reconnect the broker re-delivers and the duplicates are ignored.

Several ingest processes share the gateways with ``[mqtt] shared_group`` (``$share/<group>/…``,
each with its own ``client_id`` and lease): the stream book (``headend.ingest.streams``) locks
and re-reads each stream inside the storing transaction, and a group is stored in gateway order
(locks taken in one global order: no deadlock between processes) while PUBACKs still go out in
the order the messages were received.  The same code runs with one process.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from headend.config import MqttSettings, Settings
from headend.db.bulk import ReadingSink
from headend.db.engine import writing
from headend.db.errors import HeadendError
from headend.ingest import outbox
from headend.ingest.keys import GatewayKeys
from headend.ingest.lease import IngestLease
from headend.ingest.store import Ingestor, Outcome
from headend.ingest.streams import StreamBook
from protocols.uplink.topics import HEADEND_UP
from taiqu.clock import Clock, make_clock

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0


def _gateway(topic: str) -> str:
    parts = topic.split("/", 3)
    return parts[2] if len(parts) > 2 else ""


class BrokerError(HeadendError):
    """The broker could not be reached or refused the head-end's identity."""


def mqtt_client(cfg: MqttSettings, *, clean_session: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho client with ``[mqtt]``'s identity, credentials and TLS (not connected)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id,
        clean_session=clean_session,
        manual_ack=manual_ack,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password())
    if cfg.ca_file:
        client.tls_set(
            ca_certs=str(cfg.ca_file),
            certfile=str(cfg.cert_file) if cfg.cert_file else None,
            keyfile=str(cfg.key_file) if cfg.key_file else None,
        )
    return client


def forget_session(cfg: MqttSettings, timeout: float = 10.0) -> None:
    """Connect once with a clean session, so the broker drops ``cfg.client_id``'s session.

    A stopped ingest's persistent session stays a member of the shared group, and the broker
    keeps queueing its share of the gateways' messages for it until it comes back (the gateways
    re-send them after their ack timeout: nothing is lost, but it is late).  Run this when an
    ingest process is retired for good.  ``BrokerError`` when the broker cannot be reached or
    refuses the identity.
    """
    client = mqtt_client(cfg, clean_session=True)
    answered = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive)
    except OSError as exc:
        raise BrokerError(f"mqtt: cannot reach {cfg.host}:{cfg.port} ({exc})") from None
    client.loop_start()
    try:
        if not answered.wait(timeout):
            raise BrokerError(f"mqtt: {cfg.host}:{cfg.port} did not answer within {timeout:g} s")
        if refused:
            raise BrokerError(f"mqtt: the broker refused {cfg.client_id!r}: {refused[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass(frozen=True)
class Received:
    """A message as paho delivered it, tagged with the connection it came on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool
    generation: int


@dataclass
class IngestStats:
    """Counters since start (written by the worker thread only)."""

    messages: int = 0
    records: int = 0
    readings: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    transactions: int = 0
    retries: int = 0
    published: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class IngestService:
    """Subscribe to every gateway's ``up/#`` and store what arrives."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or make_clock("real")
        self.ingestor = Ingestor(
            settings.ingest.resend_after,
            settings.ingest.max_resend_ranges,
            StreamBook(engine, patient=bool(settings.mqtt.shared_group)),
            keys=GatewayKeys(require=settings.ingest.require_signatures),
        )
        if not settings.ingest.require_signatures:
            log.warning(
                "ingest.require_signatures is false: gateways without a registered key are "
                "accepted unverified (gateways with one must sign)"
            )
        self.stats = IngestStats()
        self.connected = threading.Event()
        self._queue: queue.Queue[Received] = queue.Queue()
        self._retry: list[Received] = []
        self._generation = 0
        self._stop = threading.Event()
        self._lease = IngestLease(engine, settings.mqtt.client_id)
        self._worker: threading.Thread | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt_client(self.settings.mqtt, clean_session=False, manual_ack=True)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # --- paho thread --------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest: %s", reason)
            return
        self._generation += 1
        topic = HEADEND_UP
        if self.settings.mqtt.shared_group:
            topic = f"$share/{self.settings.mqtt.shared_group}/{HEADEND_UP}"
        client.subscribe(topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _m: Any, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the ingest's subscription: %s", reasons)
            return
        self.connected.set()
        log.info("ingest subscribed at %s:%s", self.settings.mqtt.host, self.settings.mqtt.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest lost the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(
            Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, msg.retain, self._generation)
        )

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Take the lease, connect (retrying in the background) and start the worker."""
        self._lease.acquire()
        cfg = self.settings.mqtt
        self._client.connect_async(cfg.host, cfg.port, cfg.keepalive)
        self._client.loop_start()
        self._worker = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Finish the group in hand, disconnect, release the lease."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(30)
        self._client.disconnect()
        self._client.loop_stop()
        self._lease.release()

    def __enter__(self) -> IngestService:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- worker thread ------------------------------------------------------------------------

    def _take(self) -> list[Received]:
        group, self._retry = self._retry, []
        limit = self.settings.ingest.max_group
        if not group:
            try:
                group.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                return []
        while len(group) < limit:
            try:
                group.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return group

    def _run(self) -> None:
        backoff = 0.5
        next_outbox = next_resend = 0.0
        while not self._stop.is_set():
            group = self._take()
            try:
                if group:
                    self._store(group)
                now = time.monotonic()
                if now >= next_outbox and self.connected.is_set():
                    self._publish_outbox()
                    next_outbox = now + self.settings.ingest.outbox_interval
                if now >= next_resend and self.connected.is_set():
                    for topic, payload in self.ingestor.due_resends():
                        self._client.publish(topic, payload, qos=1)
                    next_resend = now + self.settings.ingest.resend_after / 2
                backoff = 0.5
            except (OperationalError, DBAPIError) as exc:
                if group and not self._retry:
                    self._retry = group
                self.stats.retries += 1
                log.error("database unavailable (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # a bug must not stop the ingest: log it, keep the group, go on
                if group and not self._retry:
                    self._retry = group
                log.exception("ingest worker error; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _store(self, group: list[Received]) -> None:
        now = self.clock.now()
        # Gateway order (stable: one gateway's messages keep theirs) for the stream locks.
        order = sorted(range(len(group)), key=lambda i: _gateway(group[i].topic))
        try:
            with writing(self.engine) as conn:
                sink = ReadingSink(conn)
                stored = {
                    i: self.ingestor.handle(
                        conn, group[i].topic, group[i].payload, now, group[i].retain, sink
                    )
                    for i in order
                }
                sink.flush()  # the group's readings: one COPY / executemany, before the commit
            outcomes = [stored[i] for i in range(len(group))]
        except OperationalError:
            self.ingestor.rolled_back()
            raise
        except Exception as exc:  # one message the database refuses: isolate it
            self.ingestor.rolled_back()
            if len(group) == 1:
                log.exception("storing a message on %s failed", group[0].topic)
                with writing(self.engine) as conn:
                    reason = f"storage refused the message: {type(exc).__name__}: {exc}"
                    outcomes = [
                        self.ingestor.dead_letter(
                            conn, group[0].topic, group[0].payload, reason[:1000], now
                        )
                    ]
            else:
                for m in group:
                    self._store([m])
                return
        self.stats.transactions += 1
        for message, outcome in zip(group, outcomes, strict=True):
            self._finish(message, outcome)

    def _finish(self, message: Received, outcome: Outcome) -> None:
        if message.qos > 0 and message.generation == self._generation:
            self._client.ack(message.mid, message.qos)
        for topic, payload in outcome.publish:
            self._client.publish(topic, payload, qos=1)
        s = self.stats
        s.messages += 1
        s.records += outcome.records
        s.readings += outcome.readings
        s.duplicates += outcome.duplicates
        s.dead_letters += outcome.kind == "dead"
        s.by_kind[outcome.kind] = s.by_kind.get(outcome.kind, 0) + 1

    def _publish_outbox(self) -> None:
        with writing(self.engine) as conn:
            rows = outbox.pending(conn)
        done: list[int] = []
        for row_id, topic, payload, qos, retain in rows:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            try:
                info.wait_for_publish(timeout=10)
            except (RuntimeError, ValueError):
                break
            if not info.is_published():
                break
            done.append(row_id)
        if done:
            with writing(self.engine) as conn:
                outbox.mark_published(conn, done, self.clock.now())
            self.stats.published += len(done)
