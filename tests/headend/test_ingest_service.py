"""The ingest service's group handling: stored in gateway order, acknowledged in received order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from headend.config import DatabaseSettings, MqttSettings, Settings
from headend.ingest.service import IngestService, Received
from headend.ingest.streams import held_runs
from protocols.uplink import Ack, decode
from tests.headend.gen import meter_ids, publishable, reading_batches


class Recorder:
    """Stands in for the paho client: records PUBACKs and publishes in the order made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.calls.append(("puback", mid))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.calls.append(("publish", (topic, payload)))


def service(settings: DatabaseSettings, engine: Engine, group: str | None = None) -> IngestService:
    mqtt = MqttSettings(client_id="unit-1", shared_group=group)
    s = IngestService(engine, Settings(database=settings, mqtt=mqtt))
    s._client = Recorder()  # type: ignore[assignment]
    return s


def test_a_group_is_stored_in_gateway_order_and_acknowledged_in_received_order(
    sqlite_settings: DatabaseSettings, sqlite_engine: Engine
) -> None:
    ingest = service(sqlite_settings, sqlite_engine)
    by_gateway = {
        gw: reading_batches(gw, "ab" * 8, meter_ids(2, prefix=p), steps=2, per_batch=2)
        for gw, p in (("gw-b", "0226"), ("gw-a", "0126"))
    }
    # received interleaved, the later gateway first
    order = [
        by_gateway["gw-b"][0],
        by_gateway["gw-a"][0],
        by_gateway["gw-b"][1],
        by_gateway["gw-a"][1],
    ]
    group = [
        Received(*publishable(b), mid=10 + i, qos=1, retain=False, generation=0)
        for i, b in enumerate(order)
    ]
    stored: list[str] = []
    handle = ingest.ingestor.handle

    def spy(conn: Any, topic: str, *rest: Any) -> Any:
        stored.append(topic)
        return handle(conn, topic, *rest)

    ingest.ingestor.handle = spy  # type: ignore[method-assign]
    ingest._store(group)
    assert stored == [publishable(b)[0] for b in order[1::2] + order[0::2]]  # gw-a's, then gw-b's
    recorder: Recorder = ingest._client  # type: ignore[assignment]
    assert [mid for kind, mid in recorder.calls if kind == "puback"] == [10, 11, 12, 13]
    published = [value for kind, value in recorder.calls if kind == "publish"]
    acks = [(t.split("/")[2], decode(p, Ack).upto) for t, p in published if t.endswith("/ack")]
    assert acks == [("gw-b", 1), ("gw-a", 1), ("gw-b", 3), ("gw-a", 3)]
    with sqlite_engine.connect() as conn:
        assert [held_runs(conn, gw, "ab" * 8) for gw in ("gw-a", "gw-b")] == [[(0, 3)]] * 2


def test_a_shared_group_makes_hole_requests_patient(
    sqlite_settings: DatabaseSettings, sqlite_engine: Engine
) -> None:
    assert service(sqlite_settings, sqlite_engine, "ingest").ingestor.streams.patient
    assert not service(sqlite_settings, sqlite_engine).ingestor.streams.patient
