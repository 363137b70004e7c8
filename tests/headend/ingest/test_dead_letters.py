"""Dead letters are bounded: a prefix of the bytes with length and hash, a rate cap per gateway."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from headend.db.engine import writing
from headend.db.tables import dead_letters
from headend.ingest.store import Ingestor

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
TOPIC = "taiqu/v1/gw-0001/up/data"


def test_a_huge_garbage_payload_keeps_only_a_prefix_with_its_length_and_hash(
    engine: Engine,
) -> None:
    garbage = b"{" + b"x" * (3 * 1024 * 1024)
    ing = Ingestor(dead_prefix=1024)
    with writing(engine) as conn:
        outcome = ing.handle(conn, TOPIC, garbage, NOW)
    assert outcome.kind == "dead"
    with engine.connect() as conn:
        (row,) = conn.execute(select(dead_letters)).all()
    assert len(row.payload) == 1024 and row.payload == garbage[:1024]
    assert f"{len(garbage)} bytes" in row.reason
    assert hashlib.sha256(garbage).hexdigest() in row.reason


def test_a_flood_of_garbage_from_one_gateway_is_capped_per_minute(engine: Engine) -> None:
    ing = Ingestor(dead_per_minute=5)
    with writing(engine) as conn:
        outcomes = [ing.handle(conn, TOPIC, b"not json %d" % i, NOW) for i in range(20)]
        ing.handle(conn, "taiqu/v1/gw-0002/up/data", b"garbage", NOW)  # another gateway: kept
    assert {o.kind for o in outcomes} == {"dead"}  # all refused (and acknowledged), 5 kept
    with engine.connect() as conn:
        per_gateway = dict(
            conn.execute(
                select(dead_letters.c.gateway, func.count()).group_by(dead_letters.c.gateway)
            ).all()
        )
    assert per_gateway == {"gw-0001": 5, "gw-0002": 1}


def test_garbage_on_invented_gateways_is_capped_in_all(engine: Engine) -> None:
    """Found by review: the cap was per gateway id taken from the topic, and a broker attacker
    can publish on ``taiqu/v1/<any id>/up/…``: 60 a minute for each of a million invented
    gateways filled the database (and this process's table of windows)."""
    ing = Ingestor(dead_per_minute=5, dead_total_per_minute=12)
    with writing(engine) as conn:
        outcomes = [
            ing.handle(conn, f"taiqu/v1/fake-{i}/up/data", b"garbage", NOW) for i in range(100)
        ]
    assert {o.kind for o in outcomes} == {"dead"}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 12
