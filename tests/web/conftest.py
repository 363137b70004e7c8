"""Web console fixtures: a seeded head-end with the console mounted (SQLite, manual clock)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from headend.db.migrate import upgrade
from taiqu.clock import ManualClock
from tests.headend.ops_support import TUESDAY_10, cheap_hashes_fixture  # noqa: F401
from tests.web.support import SHANGHAI, TestClient, make_app, recompute, seed, settings


@dataclass
class Web:
    """The app, its engine and clock, and the local date the data were seeded for."""

    app: FastAPI
    engine: Engine
    clock: ManualClock
    today: date
    now: datetime


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_hashes: None) -> Iterator[Web]:
    """Tuesday 10:00 Shanghai (inside the disconnect window); approval above 3 meters."""
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "w" * 40)
    config = settings(tmp_path / "web.db", guards={"supervisor_threshold": 3})
    app = make_app(config)
    clock = ManualClock(TUESDAY_10)
    app.state.clock = clock
    engine = app.state.engine
    upgrade(engine)
    today = TUESDAY_10.astimezone(SHANGHAI).date()
    seed(engine, today, TUESDAY_10)
    recompute(engine, today, TUESDAY_10)
    with TestClient(app):
        yield Web(app, engine, clock, today, TUESDAY_10)
