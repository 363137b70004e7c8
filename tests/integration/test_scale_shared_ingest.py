"""Two ``taiqu headend ingest`` processes share the gateways through ``$share/…`` (real mosquitto
and PostgreSQL).

mosquitto hands out shared-subscription messages round robin, so one gateway's batches land on
both processes in no guaranteed order; a held-back batch is asked for again and re-sent.  Every
generated reading must be stored exactly once, every batch acknowledged, and both processes used.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.engine import reading
from headend.db.migrate import upgrade
from headend.db.tables import dead_letters, readings, streams
from tests.services import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402

pytestmark = pytest.mark.integration
_names = itertools.count()


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    name = f"shared{next(_names)}_{os.getpid()}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(DatabaseSettings(url=url))
    upgrade(engine)
    engine.dispose()
    yield url


def wait_for(what: str, check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def spawn(
    tmp: Path, url: str, broker: Mosquitto, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    config = tmp / f"{name}.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "{name}"\n'
        'shared_group = "ingest"\n'
        "[ingest]\nresend_after = 0.5\nmax_group = 50\n"
    )
    stats = tmp / f"{name}.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taiqu.cli",
            "headend",
            "ingest",
            "--config",
            str(config),
            "--stats",
            str(stats),
            "--ready",
            str(tmp / f"{name}.ready"),
        ],
        cwd=ROOT,
    )
    return proc, stats


def test_two_ingest_processes_share_the_load_losing_and_duplicating_nothing(
    mosquitto: Mosquitto, pg_url: str, tmp_path: Path
) -> None:
    workers = [spawn(tmp_path, pg_url, mosquitto, n) for n in ("ingest-a", "ingest-b")]
    try:
        wait_for(
            "both ingests subscribed",
            lambda: all((tmp_path / f"{n}.ready").exists() for n in ("ingest-a", "ingest-b")),
        )
        args = loadgen.parse(
            [
                "--port",
                str(mosquitto.port),
                "--gateways",
                "12",
                "--meters",
                "15",
                "--quantities",
                "2",
                "--hours",
                "2",
                "--factor",
                "9000",
                "--connections",
                "2",
                "--skip",
                "4",
                "--drain",
                "40",
            ]
        )
        result = loadgen.LoadGen(args).run()
    finally:
        for proc, _ in workers:
            proc.terminate()
        for proc, _ in workers:
            proc.wait(30)
    stats = [json.loads(s.read_text()) for _, s in workers]
    assert result["unacked_batches"] == 0
    assert result["resends_served"] > 0  # held-back batches were asked for and re-sent
    assert all(s["messages"] > 0 for s in stats)  # both processes stored messages
    engine: Engine = make_engine(DatabaseSettings(url=pg_url))
    try:
        with reading(engine) as conn:
            stored = conn.execute(
                select(readings.c.meter, readings.c.quantity, readings.c.time, readings.c.value)
            ).all()
            runs = conn.execute(select(streams.c.base, streams.c.upto, streams.c.ranges)).all()
            dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
    finally:
        engine.dispose()
    expected = set()
    for g in range(args.gateways):
        sim = loadgen.GatewaySim(loadgen.gateway_id(g), g, "0" * 16)
        for step in range(args.intervals):
            body = loadgen.decode(loadgen.LoadGen.batch(_Shim(args), sim, step)[2], loadgen.Batch)
            for r in body.records:
                expected |= {(r.meter, q, r.gateway_time, str(v)) for q, v in r.values.items()}
    assert len(stored) == len(set(stored)) == result["readings"]
    assert set(stored) == expected  # every generated value, once, unchanged
    assert all(r.ranges == "" for r in runs)  # every stream gap-free: one run each
    assert sum(r.upto - r.base + 1 for r in runs) == result["records"]
    assert dead == 0


class _Shim:
    """Just enough of LoadGen for ``LoadGen.batch`` to rebuild the expected records."""

    def __init__(self, args) -> None:  # type: ignore[no-untyped-def]
        self.args = args


def test_kill_9_of_one_of_two_shared_ingests_loses_and_duplicates_nothing(
    mosquitto: Mosquitto, pg_url: str, tmp_path: Path
) -> None:
    """One process is killed mid-load and restarted: its uncommitted share comes back."""
    import signal
    import threading

    names = ("kill-a", "kill-b")
    workers = {n: spawn(tmp_path, pg_url, mosquitto, n) for n in names}
    try:
        wait_for(
            "both ingests subscribed",
            lambda: all((tmp_path / f"{n}.ready").exists() for n in names),
        )
        args = loadgen.parse(
            [
                *("--port", str(mosquitto.port), "--gateways", "10", "--meters", "20"),
                *("--quantities", "2", "--hours", "1", "--factor", "900"),
                *("--connections", "2", "--ack-timeout", "3", "--drain", "60"),
            ]
        )
        result: dict[str, object] = {}
        load = threading.Thread(target=lambda: result.update(loadgen.LoadGen(args).run()))
        load.start()
        engine: Engine = make_engine(DatabaseSettings(url=pg_url))
        try:

            def stored() -> int:
                with reading(engine) as conn:
                    return int(
                        conn.execute(select(func.count()).select_from(readings)).scalar_one()
                    )

            wait_for("a first share stored", lambda: stored() > 0)
            killed, _ = workers["kill-a"]
            killed.send_signal(signal.SIGKILL)
            killed.wait(10)
            time.sleep(1.0)  # the load goes on with one process, and queues for the dead one
            (tmp_path / "kill-a.ready").unlink()
            workers["kill-a"] = spawn(tmp_path, pg_url, mosquitto, "kill-a")
            wait_for("the restarted ingest subscribed", (tmp_path / "kill-a.ready").exists)
            load.join(120)
            assert not load.is_alive()
            with reading(engine) as conn:
                rows = conn.execute(
                    select(readings.c.meter, readings.c.quantity, readings.c.time, readings.c.value)
                ).all()
                runs = conn.execute(select(streams.c.base, streams.c.upto, streams.c.ranges)).all()
                dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        finally:
            engine.dispose()
    finally:
        for proc, _ in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in workers.values():
            proc.wait(30)
    assert result["unacked_batches"] == 0
    expected = set()
    for g in range(args.gateways):
        sim = loadgen.GatewaySim(loadgen.gateway_id(g), g, "0" * 16)
        for step in range(args.intervals):
            body = loadgen.decode(loadgen.LoadGen.batch(_Shim(args), sim, step)[2], loadgen.Batch)
            for r in body.records:
                expected |= {(r.meter, q, r.gateway_time, str(v)) for q, v in r.values.items()}
    assert len(rows) == len(set(rows)) == result["readings"]  # none lost, none twice
    assert set(rows) == expected
    assert all(r.ranges == "" for r in runs)
    assert sum(r.upto - r.base + 1 for r in runs) == result["records"]
    assert dead == 0
