"""The meter registry: a meter added is recognised within seconds; the archive is not re-read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, update

import headend.ingest.registry as registry_module
from headend.db.engine import writing
from headend.db.tables import meters
from headend.ingest.registry import MeterRegistry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(registry_module.time, "monotonic", fake)
    return fake


def add(engine: Engine, meter: str) -> None:
    with writing(engine) as conn:
        conn.execute(
            insert(meters).values(
                id=meter,
                point=meter,
                area="A1",
                bus="b",
                protocol="dlt645-2007",
                address=meter,
                valid_from=T0,
            )
        )


def unknown(engine: Engine, reg: MeterRegistry, ids: list[str]) -> set[str]:
    with writing(engine) as conn:
        return reg.unknown(conn, ids)


def test_a_meter_added_is_recognised_within_the_recheck(engine: Engine, clock: Clock) -> None:
    reg = MeterRegistry(reload=300, recheck=5)
    add(engine, "202600000001")
    assert unknown(engine, reg, ["202600000001", "202600000002"]) == {"202600000002"}
    add(engine, "202600000002")
    clock.now += 1
    assert unknown(engine, reg, ["202600000002"]) == {"202600000002"}  # absent, not asked again
    clock.now += 5
    assert unknown(engine, reg, ["202600000002"]) == set()


def test_a_meter_removed_is_noticed_at_the_reload(engine: Engine, clock: Clock) -> None:
    reg = MeterRegistry(reload=300, recheck=5)
    add(engine, "202600000001")
    assert unknown(engine, reg, ["202600000001"]) == set()
    with writing(engine) as conn:
        conn.execute(update(meters).values(valid_to=T0.replace(year=2027)))
    clock.now += 60
    assert unknown(engine, reg, ["202600000001"]) == set()  # the cached set still has it
    clock.now += 300
    assert unknown(engine, reg, ["202600000001"]) == {"202600000001"}


def test_known_meters_cost_no_query_between_reloads(engine: Engine, clock: Clock) -> None:
    reg = MeterRegistry(reload=300, recheck=5)
    ids = [f"2026{i:08d}" for i in range(50)]
    for m in ids:
        add(engine, m)
    assert unknown(engine, reg, ids) == set()
    queries: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "meters" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(20):
            clock.now += 10  # past several rechecks, before the reload
            assert unknown(engine, reg, ids) == set()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert queries == []
