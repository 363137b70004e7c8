"""``taiqu headend maintain`` (on the head-end clock) and ``forget-session`` (a real broker)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from headend.cli import app
from tests.headend.conftest import _pg_copy
from tests.services import Mosquitto


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_maintain_creates_partitions_ahead_of_the_head_end_clock(
    pg_template: str, tmp_path: Path
) -> None:
    config = tmp_path / "headend.toml"
    anchor = datetime.now(UTC).replace(microsecond=0).isoformat()  # simulated = start from now
    config.write_text(
        f"clock = {{ start = 2031-03-10T09:30:00+08:00, factor = 1, anchor = {anchor} }}\n"
        f'[database]\nurl = "{_pg_copy(pg_template)}"\n[scale]\npartitions_ahead = 2\n'
    )
    code, out = invoke("maintain", "--config", str(config))
    assert code == 0, out
    # the simulated March 2031 and two months ahead, not the wall clock's months
    assert "partitions created: ['2031-03-01', '2031-04-01', '2031-05-01']" in out
    code, out = invoke("maintain", "--config", str(config))  # idempotent
    assert code == 0 and "partitions created: []" in out


def test_maintain_names_a_bad_scale_key(tmp_path: Path) -> None:
    config = tmp_path / "headend.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "h.db"}"\n[scale]\nzone = "Mars/Base"\n'
    )
    code, out = invoke("maintain", "--config", str(config))
    assert code == 2 and "scale.zone" in out


class Session:
    """A persistent-session subscriber: what the broker queued for it while away."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.received: list[bytes] = []
        self.present: bool | None = None
        self.ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.received.append(m.payload)
        self.broker = broker

    def _on_connect(self, client, _u, flags, _rc, _p) -> None:  # type: ignore[no-untyped-def]
        self.present = bool(flags.session_present)
        client.subscribe("taiqu/v1/+/up/#", qos=1)

    def __enter__(self) -> Session:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Mosquitto, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish("taiqu/v1/gw-1/up/data", payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.mark.integration
def test_forget_session_drops_what_the_broker_queues_for_a_retired_ingest(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "headend.toml"
    config.write_text(
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id = "retired-1"\n'
    )
    with Session(mosquitto, "retired-1"):
        pass
    publish(mosquitto, b"queued while away")
    with Session(mosquitto, "retired-1") as back:  # without forgetting: queued, delivered
        assert back.present
        deadline = time.monotonic() + 10
        while not back.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert back.received == [b"queued while away"]
    publish(mosquitto, b"queued for nobody")
    code, out = invoke("forget-session", "--config", str(config))
    assert code == 0, out
    with Session(mosquitto, "retired-1") as after:
        assert after.present is False  # a new session: nothing was kept for it
    assert after.received == []


def test_forget_session_reports_an_unreachable_broker(tmp_path: Path) -> None:
    config = tmp_path / "headend.toml"
    config.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1\nclient_id = "x-1"\n')
    code, out = invoke("forget-session", "--config", str(config))
    assert code == 1 and "cannot reach 127.0.0.1:1" in out
