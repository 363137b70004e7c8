"""The MQTT uplink: store-and-forward drain with the head-end's end-to-end acknowledgement.

paho-mqtt runs its network loop in its own thread; its callbacks only hand events to the asyncio
loop with ``loop.call_soon_threadsafe``.  Everything else (store access in ``to_thread``, the
window, decoding) happens in two asyncio tasks:

- ``drain`` (``gateway.uplink.drain``): publishes pending records as size-capped batches (QoS 1)
  within the in-flight window (``gateway.uplink.window``), rewinds after an Ack timeout, serves
  re-send requests;
- ``inbox``: decodes ``down/*`` messages: ``Ack`` → ``store.acknowledge`` (rows become prunable
  only now, never on a broker PUBACK), ``ResendRequest`` → queued for the drain, ``Command`` and
  ``ArchivePush`` → the callbacks given by the daemon.

Session: client id = gateway id, persistent session (clean_session false), retained last will
``Status(offline)``, retained birth ``Status(online)`` on every connect, QoS 1 everywhere.  With a
``sealer`` (the gateway's key, ``[signatures] signing_key_file``) every payload it publishes —
batches, statuses, results, the last will — is signed over its exact bytes on their topic
(``protocols.uplink.envelope``).
Undecodable payloads are logged and counted, never raised.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from pydantic import BaseModel

from gateway.errors import UplinkError
from gateway.store import Store
from gateway.uplink.drain import Drain
from gateway.uplink.settings import BrokerSettings, UplinkSettings, broker_password
from gateway.uplink.window import Window
from protocols.errors import ContractError
from protocols.uplink import (
    Ack,
    ArchivePush,
    Command,
    CommandResult,
    ResendRequest,
    Status,
    Topics,
    decode_message,
    encode,
)
from taiqu.clock import Clock

if TYPE_CHECKING:  # cryptography is imported only by a gateway that signs
    from protocols.uplink.envelope import Sealer

log = logging.getLogger(__name__)

Callback = Callable[[Any], Awaitable[None] | None]
_SENT = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)  # NO_CONN: paho queued it


class Uplink(Drain):
    """One gateway's MQTT session; see the module docstring (the drain: ``Drain``)."""

    def __init__(
        self,
        gateway_id: str,
        broker: BrokerSettings,
        store: Store,
        clock: Clock,
        *,
        software_version: str = "",
        config_hash: str | None = None,
        archive_version_fn: Callable[[], int | None] | None = None,
        clock_synced_fn: Callable[[], bool | None] | None = None,
        on_command: Callback | None = None,
        on_archive: Callback | None = None,
        settings: UplinkSettings | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.topics = Topics(gateway_id)
        self.sealer = sealer
        self.gateway_id = gateway_id
        self.broker = broker
        self.store = store
        self.clock = clock
        self.software_version = software_version
        self.config_hash = config_hash
        self.archive_version_fn = archive_version_fn
        self.clock_synced_fn = clock_synced_fn
        self.on_command = on_command
        self.on_archive = on_archive
        self.settings = settings or UplinkSettings()
        s = self.settings
        self.window = Window(s.window, s.ack_timeout, s.ack_timeout_max)
        self.counters: dict[str, int] = {
            "batches": 0, "records": 0, "resent_batches": 0, "acks": 0, "stale_acks": 0,
            "bad_payloads": 0, "rewinds": 0, "connects": 0, "bytes_up": 0, "callback_errors": 0,
        }  # fmt: skip
        self._connected = False
        self._stopping = False
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=1000)
        self._resends: deque[tuple[int, int]] = deque(maxlen=s.resend_queue)
        self._outstanding: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the MQTT session is up right now."""
        return self._connected

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the session is up (``TimeoutError`` after ``timeout`` seconds)."""
        await asyncio.wait_for(self._connected_event.wait(), timeout)

    async def start(self) -> None:
        """Connect in the background (paho retries until the broker answers) and start draining."""
        if self._client is not None:
            raise UplinkError("the uplink is already started")
        self._loop = asyncio.get_running_loop()
        self._client = client = self._make_client()
        self.store.add_listener(self._on_append)
        client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        client.loop_start()
        self._tasks = [
            asyncio.create_task(self._drain(), name="uplink-drain"),
            asyncio.create_task(self._receive(), name="uplink-inbox"),
        ]

    async def stop(self) -> None:
        """Publish the retained offline status (a clean stop sends no will), then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        self.store.remove_listener(self._on_append)
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=self.settings.stop_timeout)
        if self._connected:
            info = client.publish(
                self.topics.status,
                self._payload(self.topics.status, self._status("offline")),
                qos=1,
                retain=True,
            )
            deadline = time.monotonic() + self.settings.stop_timeout
            while not info.is_published() and time.monotonic() < deadline and self._connected:
                await asyncio.sleep(0.02)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._set_connected(False)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.gateway_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(
            self.broker.username or self.gateway_id, broker_password(self.broker)
        )
        if self.broker.ca_file or self.broker.cert_file:
            client.tls_set(
                ca_certs=str(self.broker.ca_file) if self.broker.ca_file else None,
                certfile=str(self.broker.cert_file) if self.broker.cert_file else None,
                keyfile=str(self.broker.key_file) if self.broker.key_file else None,
            )
        will = Status(gateway=self.gateway_id, state="offline", epoch=self.store.epoch)
        client.will_set(self.topics.status, self._payload(self.topics.status, will), 1, True)
        client.reconnect_delay_set(
            max(1, round(self.settings.reconnect_min)), max(1, round(self.settings.reconnect_max))
        )
        client.max_inflight_messages_set(self.settings.max_outstanding * 2)
        client.max_queued_messages_set(self.settings.max_outstanding * 8)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- paho thread: hand everything to the loop ------------------------------------------------

    def _to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: we are shutting down
            pass

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._to_loop(log.warning, "broker refused the connection: %s", reason)
            return
        client.subscribe(self.topics.down, qos=1)
        self._to_loop(self._set_connected, True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        self._to_loop(self._set_connected, False)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._to_loop(self._enqueue, message.topic, bytes(message.payload))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._to_loop(self._published, mid)

    def _on_append(self, last_seq: int) -> None:  # called from whichever thread appended
        self._to_loop(self._wake.set)

    # -- loop side --------------------------------------------------------------------------------

    def _set_connected(self, up: bool) -> None:
        if up == self._connected:
            return
        self._connected = up
        if up:
            self.counters["connects"] += 1
            log.info("uplink connected to %s:%s", self.broker.host, self.broker.port)
            self._connected_event.set()
            self._publish(self.topics.status, self._status("online"), retain=True)
            self.window.restart_timers(time.monotonic())
        else:
            log.warning("uplink disconnected from %s:%s", self.broker.host, self.broker.port)
            self._connected_event.clear()
            self._outstanding.clear()
        self._wake.set()

    def _enqueue(self, topic: str, payload: bytes) -> None:
        try:
            self._inbox.put_nowait((topic, payload))
        except asyncio.QueueFull:  # QoS 1: the head-end re-sends what matters (acks, commands)
            log.warning("uplink inbox full: dropped a message on %s", topic)

    def _published(self, mid: int) -> None:
        self._outstanding.discard(mid)
        self._wake.set()

    def _payload(self, topic: str, message: BaseModel) -> bytes:
        """The bytes published on ``topic``: the encoded message, signed when there is a key."""
        body = encode(message)
        return body if self.sealer is None else self.sealer.seal(topic, body)

    def _publish(self, topic: str, message: BaseModel, *, retain: bool = False) -> bool:
        if self._client is None:
            return False
        payload = self._payload(topic, message)
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in _SENT:
            log.warning("publish on %s refused by the client: %s", topic, info.rc)
            return False
        self._outstanding.add(info.mid)
        self.counters["bytes_up"] += len(payload)
        return True

    def _status(self, state: str) -> Status:
        if state == "offline":
            return Status(gateway=self.gateway_id, state="offline", epoch=self.store.epoch)
        return Status(
            gateway=self.gateway_id,
            state="online",
            time=self.clock.now(),
            software=self.software_version or None,
            config_hash=self.config_hash,
            archive_version=self.archive_version_fn() if self.archive_version_fn else None,
            epoch=self.store.epoch,
            clock_synced=self.clock_synced_fn() if self.clock_synced_fn else None,
        )

    def publish_status(self, health: dict[str, Any] | None = None) -> bool:
        """Publish a retained online status with ``health`` plus the uplink's own counters."""
        status = self._status("online").model_copy(
            update={"health": {**(health or {}), "uplink": dict(self.counters)}}
        )
        return self._publish(self.topics.status, status, retain=True)

    def publish_result(self, result: CommandResult) -> bool:
        """Publish one step of a command's lifecycle (QoS 1; queued by paho while offline)."""
        return self._publish(self.topics.result, result)

    def notify(self) -> None:
        """Look at the store now (appends through the same Store notify automatically)."""
        self._wake.set()

    def health(self) -> dict[str, Any]:
        """Counters for the daemon's health report."""
        return {
            "connected": self._connected,
            "in_flight": len(self.window.inflight),
            **self.counters,
        }

    # -- inbox ------------------------------------------------------------------------------------

    async def _receive(self) -> None:
        while not self._stopping:
            topic, payload = await self._inbox.get()
            try:
                _, kind, message = decode_message(topic, payload)
            except ContractError as exc:
                self.counters["bad_payloads"] += 1
                log.warning("undecodable message on %s: %s", topic, exc)
                continue
            except Exception:  # a decoder bug must never end the inbox (nothing read after it)
                self.counters["bad_payloads"] += 1
                log.exception("decoding a message on %s failed", topic)
                continue
            try:
                await self._handle(kind, message)
            except Exception:
                self.counters["callback_errors"] += 1
                log.exception("handling %s failed", kind)

    async def _handle(self, kind: str, message: BaseModel) -> None:
        if isinstance(message, Ack):
            outcome = await asyncio.to_thread(self.store.acknowledge, message)
            if outcome.stale_epoch:
                self.counters["stale_acks"] += 1
                log.warning(
                    "Ack for epoch %s ignored (ours is %s)", message.epoch, self.store.epoch
                )
                return
            self.counters["acks"] += 1
            self.window.acked(message.upto, message.ranges)
            self._wake.set()
        elif isinstance(message, ResendRequest):
            if message.epoch != self.store.epoch:
                log.warning("ResendRequest for epoch %s ignored", message.epoch)
                return
            self._resends.append((message.first, message.last))
            self._wake.set()
        elif isinstance(message, Command) and self.on_command is not None:
            await _call(self.on_command, message)
        elif isinstance(message, ArchivePush) and self.on_archive is not None:
            await _call(self.on_archive, message)


async def _call(callback: Callback, message: BaseModel) -> None:
    result = callback(message)
    if inspect.isawaitable(result):
        await result
