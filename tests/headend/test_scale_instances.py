"""Several head-end instances on one PostgreSQL: each instance is its own engine (own pool).

Job claims, audit appends and maintenance race from two instances at once; the command
dispatcher's SKIP LOCKED claim is covered by tests/headend/test_commands_api.py
(``test_two_dispatchers_never_send_a_dispatch_twice``, both backends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select

from headend.analytics.job import claim
from headend.audit import log as audit
from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.analytics_tables import analytics_runs
from headend.db.engine import reading, writing

NOW = datetime(2026, 11, 24, 3, tzinfo=UTC)


@pytest.fixture
def instances(db_settings: DatabaseSettings) -> Iterator[list[Engine]]:
    """Two head-end instances (two engines with their own pools) on the same database."""
    pair = [make_engine(db_settings) for _ in range(2)]
    yield pair
    for e in pair:
        e.dispose()


def race(jobs: list[Callable[[], None]]) -> None:
    """Start every job at once (a barrier), wait for all, re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        barrier.wait(10)
        try:
            job()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def test_one_analytics_run_per_day_across_instances(instances: list[Engine]) -> None:
    days = [date(2026, 11, d) for d in range(1, 6)]
    won: list[tuple[date, str]] = []
    lock = threading.Lock()

    def job(engine: Engine, who: str) -> Callable[[], None]:
        def run() -> None:
            for day in days:
                if claim(engine, day, who, NOW):
                    with lock:
                        won.append((day, who))

        return run

    race([job(e, f"head-end-{i}.{k}") for i, e in enumerate(instances) for k in range(3)])
    assert sorted(d for d, _ in won) == days  # every day claimed exactly once
    with reading(instances[0]) as conn:
        runs = conn.execute(select(analytics_runs.c.day, analytics_runs.c.claimed_by)).all()
    assert sorted((r.day, r.claimed_by) for r in runs) == sorted(
        (d.isoformat(), who) for d, who in won
    )


def test_audit_appends_from_two_instances_form_one_chain(instances: list[Engine]) -> None:
    per_job = 12

    def job(engine: Engine, who: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(per_job):
                with writing(engine) as conn:
                    audit.append(conn, who, "command.create", f"{who}.{i}")

        return run

    race([job(e, f"i{i}.{k}") for i, e in enumerate(instances) for k in range(2)])
    with reading(instances[1]) as conn:
        result = audit.verify(conn)
        entries = audit.entries(conn, limit=1000)
    assert result.ok and result.rows == 4 * per_job
    assert [e.id for e in entries] == list(range(1, 4 * per_job + 1))  # gap-free, one chain
