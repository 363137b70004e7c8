"""A minimal stand-in for a gateway on a real broker, for the console's end-to-end tests.

It speaks the MQTT contract (``protocols.uplink``): announces itself online, and answers each
``down/cmd`` with per-meter ``CommandResult``s (received, then executed), publishing what a meter
would report in an ``up/data`` batch: the on-demand reading for ``read`` (tagged with the command
id), the new ``relay.state`` for relay commands.  Batches are re-sent until the head-end's ``ack``.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from decimal import Decimal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols.model import ReadingKind
from protocols.uplink import (
    Ack,
    Batch,
    Command,
    CommandAction,
    CommandResult,
    CommandState,
    ReadingRecord,
    Status,
    Topics,
    decode,
    encode,
)

RELAY_AFTER = {
    CommandAction.RELAY_TRIP: "open",
    CommandAction.RELAY_CLOSE_DIRECT: "closed",
}


class FakeGateway:
    """Answers commands for ``gateway`` on the broker at ``host:port``."""

    def __init__(self, host: str, port: int, gateway: str, read_value: Decimal) -> None:
        self.topics = Topics(gateway)
        self.gateway = gateway
        self.read_value = read_value
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.acked = -1
        self.commands: list[Command] = []
        self._acked = threading.Condition()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-{gateway}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the fake gateway could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe([(self.topics.cmd, 1), (self.topics.ack, 1)])
        status = Status(gateway=self.gateway, state="online", time=datetime.now(UTC))
        client.publish(self.topics.status, encode(status), qos=1, retain=True)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.ack:
            ack = decode(bytes(message.payload), Ack)
            with self._acked:
                self.acked = max(self.acked, ack.upto)
                self._acked.notify_all()
            return
        command = decode(bytes(message.payload), Command)
        self.commands.append(command)
        threading.Thread(target=self._execute, args=(command,), daemon=True).start()

    def _result(self, command: Command, meter: str, state: CommandState) -> None:
        result = CommandResult(
            id=command.id, gateway=self.gateway, state=state, at=datetime.now(UTC), meter=meter
        )
        self._client.publish(self.topics.result, encode(result), qos=1).wait_for_publish(5)

    def _execute(self, command: Command) -> None:
        meters = list(command.meters or ())
        for meter in meters:
            self._result(command, meter, CommandState.RECEIVED)
        now = datetime.now(UTC)
        records = []
        for meter in meters:
            if command.action is CommandAction.READ:
                values: dict[str, str | int] = {"energy.active.import.total": str(self.read_value)}
                kind = ReadingKind.ON_DEMAND
            elif command.action in RELAY_AFTER:
                values = {"relay.state": RELAY_AFTER[command.action]}
                kind = ReadingKind.ON_DEMAND
            else:
                continue
            records.append(
                ReadingRecord(
                    meter=meter, kind=kind, gateway_time=now, command=command.id, values=values
                )
            )
        if records:
            self._publish_batch(records)
        for meter in meters:
            self._result(command, meter, CommandState.EXECUTED)

    def _publish_batch(self, records: list[ReadingRecord]) -> None:
        seq = self.seq
        self.seq += len(records)
        batch = Batch(
            gateway=self.gateway,
            epoch=self.epoch,
            seq=seq,
            sent=datetime.now(UTC),
            records=tuple(records),
        )
        last = seq + len(records) - 1
        for _ in range(10):  # re-send until the head-end acknowledges, as a gateway does
            self._client.publish(self.topics.data, encode(batch), qos=1).wait_for_publish(5)
            with self._acked:
                if self._acked.wait_for(lambda: self.acked >= last, timeout=3):
                    return

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
