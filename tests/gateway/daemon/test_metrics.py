"""Health metrics: books, utilisation, the status dict and a real scrape of /metrics."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.daemon.metrics import STATUS_FAILING_LIMIT, GatewayMetrics

T = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def metrics():
    ticks = Ticks()
    bus = {"transactions": 0, "timeouts": 0, "garbled": 0, "noise_bytes": 0, "busy_s": 0.0}
    m = GatewayMetrics(window_s=60, monotonic=ticks, clock_synced=lambda: False)
    m.add_bus("bus1", lambda: bus)
    yield m, bus, ticks
    m.stop()


def test_utilisation_is_the_busy_share_of_the_recent_window(metrics):
    m, bus, ticks = metrics
    assert m.bus_snapshot()["bus1"]["utilisation"] == 0.0
    ticks.t += 10
    bus["busy_s"] = 4.0
    assert m.bus_snapshot()["bus1"]["utilisation"] == pytest.approx(0.4)
    for _ in range(10):  # a busy line for two more minutes, then idle
        ticks.t += 12
        bus["busy_s"] += 12.0
        m.bus_snapshot()
    for _ in range(6):
        ticks.t += 12
        m.bus_snapshot()
    ticks.t += 12
    assert m.bus_snapshot()["bus1"]["utilisation"] < 0.2  # the busy minutes left the window


def test_meters_keep_their_last_success_and_failure_runs(metrics):
    m, _, _ = metrics
    m.meter_failed("a")
    m.meter_failed("a")
    m.meter_ok("b", T)
    health = m.as_dict()["meters"]
    assert health == {"known": 2, "failing": 1, "consecutive_failures": {"a": 2}}
    m.meter_ok("a", T)
    assert m.as_dict()["meters"]["failing"] == 0 and m.meters["a"].last_success == T


def test_the_status_dict_stays_bounded(metrics):
    m, _, _ = metrics
    for i in range(STATUS_FAILING_LIMIT + 30):
        m.meter_failed(f"m{i:04d}")
    health = m.as_dict()["meters"]
    assert health["failing"] == STATUS_FAILING_LIMIT + 30
    assert len(health["consecutive_failures"]) == STATUS_FAILING_LIMIT


def test_collection_success_per_schedule_and_phase(metrics):
    m, _, _ = metrics
    m.collection("daily_frozen", "first_sweep", due=200, read=194, at=T)
    m.collection("daily_frozen", "after_backfill", due=200, read=200, at=T)
    got = m.as_dict()["collection"]["daily_frozen"]
    assert got["first_sweep"] == {"due": 200, "read": 194, "ratio": 0.97}
    assert got["after_backfill"]["ratio"] == 1.0
    with pytest.raises(ValueError):
        m.collection("energy", "later", 1, 1, T)
    with pytest.raises(ValueError):
        m.collection("energy", "first_sweep", 1, 2, T)


def test_the_endpoint_serves_prometheus_text_on_loopback(metrics):
    m, bus, _ = metrics
    bus.update(transactions=120, timeouts=3, garbled=2, noise_bytes=17, busy_s=30.0)
    m.meter_ok("202611240001", T)
    m.meter_failed("202611240002")
    m.collection("energy", "first_sweep", due=2, read=1, at=T)
    port = m.serve(0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    got = samples(text)
    bus1 = (("bus", "bus1"),)
    assert got[("taiqu_bus_transactions_total", bus1)] == 120
    assert got[("taiqu_bus_timeouts_total", bus1)] == 3
    assert got[("taiqu_bus_checksum_errors_total", bus1)] == 2
    assert got[("taiqu_bus_noise_bytes_total", bus1)] == 17
    assert got[("taiqu_bus_link_up", bus1)] == 1
    ok = (("meter", "202611240001"),)
    assert got[("taiqu_meter_last_success_timestamp_seconds", ok)] == T.timestamp()
    assert got[("taiqu_meter_consecutive_failures", (("meter", "202611240002"),))] == 1
    sched = (("phase", "first_sweep"), ("schedule", "energy"))
    assert got[("taiqu_collection_success_ratio", sched)] == 0.5
    assert got[("taiqu_gateway_clock_synced", ())] == 0
    with pytest.raises(RuntimeError):
        m.serve(0)
    m.stop()
    m.stop()  # idempotent
