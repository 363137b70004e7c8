"""An independent oracle: the PyPI ``dlt698`` package (a binding to a C++ 698.45 library).

It lives in its own virtual environment, created by ``peer_python`` below and cached in the
temp directory; Taiqu never imports it.  If the wheel cannot be installed here (no network, no
wheel for this platform) the tests skip and say why.

- The peer decodes and re-encodes every APDU Taiqu encodes: realistic messages must all pass
  byte-identically; for generated ones, whatever the peer accepts must come back identical, and
  what it refuses must fall in the semantic checks listed in docs/dlt698.md (the peer validates
  enum ranges and reserved bits that Taiqu's decoder leaves to the application).
- The peer's client reads Taiqu's simulated meter over TCP (CONNECT, then GET).
- Taiqu's client reads a meter served by the peer's server over TCP.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protocols.dlt698 import (
    NEED_DATA,
    OAD,
    OBJECTS,
    Client,
    ConnectResponse,
    GetResponseNormal,
    decode_value,
    encode_apdu,
)
from simulators.config import parse_config
from simulators.fleet import start_fleet
from simulators.meter import total
from tests.protocols.dlt698 import strategies as s
from tests.protocols.dlt698.realistic import REALISTIC

PEER = "dlt698==1.0.1"
HERE = Path(__file__).parent / "peer"
# Semantic checks the peer makes and Taiqu's decoder does not (docs/dlt698.md, "Peer").
PEER_ONLY_CHECKS = (
    "PIID reserved bit",
    "TI unit",
    "CONNECT result",
    "RELEASE result",
    "LINK result",
    "ERROR type",
    "GET count",
    "COMDCB",
    "visible-string",  # printable characters only, passwords included
    "bit-string padding",
    "nonfinal DAR block",
    "date",
    "time",
    "enum",
    "OAD",
    "MS",
    "RSD",
    "region",
    "length",
)


@pytest.fixture(scope="session")
def peer_python() -> Path:
    """The peer's interpreter, installed once into a cached virtual environment."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    cache = Path(os.environ.get("TAIQU_PEER_CACHE", tempfile.gettempdir())) / "taiqu-peers"
    venv = cache / f"dlt698-1.0.1-{tag}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import dlt698"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", PEER],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot create the peer's virtual environment: {exc}")
    if done.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip(f"the PyPI {PEER} wheel does not install here: {done.stderr.strip()[-300:]}")
    return python


def peer_codec(python: Path, apdus: list[bytes]) -> list[str]:
    done = subprocess.run(
        [str(python), str(HERE / "codec.py")],
        input="".join(a.hex() + "\n" for a in apdus),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def test_peer_reencodes_realistic_messages_byte_identically(peer_python: Path) -> None:
    apdus = [encode_apdu(m) for m in REALISTIC]
    verdicts = peer_codec(peer_python, apdus)
    assert len(verdicts) == len(apdus)
    for message, verdict in zip(REALISTIC, verdicts, strict=True):
        assert verdict == "ok", (message, verdict)


@settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(s.apdus, min_size=40, max_size=40))
def test_peer_agrees_on_generated_apdus(peer_python: Path, batch: list[Any]) -> None:
    apdus = [encode_apdu(m) for m in batch]
    for message, verdict in zip(batch, peer_codec(peer_python, apdus), strict=True):
        assert not verdict.startswith("diff"), (message, verdict)
        if verdict.startswith("error"):
            assert any(check in verdict for check in PEER_ONLY_CHECKS), (message, verdict)


METER = "202612060001"


async def test_peer_client_reads_the_simulated_meter(peer_python: Path) -> None:
    config = parse_config(
        {
            "buses": [{"name": "bus1", "listen": "tcp://127.0.0.1:0", "baud": 9600, "pace": False}],
            "meters": [{"bus": "bus1", "protocol": "dlt698", "address": METER}],
        }
    )
    async with start_fleet(config) as fleet:
        port = fleet.endpoints["bus1"].rsplit(":", 1)[1]
        proc = await asyncio.create_subprocess_exec(
            str(peer_python),
            str(HERE / "client.py"),
            "127.0.0.1",
            port,
            METER,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-500:]
        seen = json.loads(out)
        meter = fleet.meter(METER)
        now = fleet.clock.now().timestamp()
        truth = round(total(meter.registered(now)[0]) * 100)
        assert abs(seen["energy"][0] - truth) <= 1  # 0.01 kWh: the register moved meanwhile
        assert seen["address"] == METER
        year = seen["clock"][0] << 8 | seen["clock"][1]
        shown = datetime(year, *seen["clock"][2:])
        assert abs((shown - meter.meter_time(now).replace(microsecond=0)).total_seconds()) <= 2


@pytest.fixture
def peer_server(peer_python: Path) -> Iterator[int]:
    with subprocess.Popen(
        [str(peer_python), str(HERE / "server.py"), METER, "123456,1,2,3,4", "2026-12-06T10:00:00"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        try:
            yield int(proc.stdout.readline())
        finally:
            proc.stdin.close()
            proc.wait(10)


def test_taiqu_client_reads_the_peer_server(peer_server: int) -> None:
    client = Client(preamble=0)
    with socket.create_connection(("127.0.0.1", peer_server), timeout=3) as sock:

        def transact(raw: bytes) -> object:
            sock.sendall(raw)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                client.receive_data(sock.recv(4096))
                event = client.next_event()
                if event is not NEED_DATA:
                    return event
            raise AssertionError("no answer from the peer server")

        connected = transact(client.connect(METER))
        assert isinstance(connected, ConnectResponse) and connected.result == 0
        values: dict[str, object] = {}
        for oi in (0x0010, 0x4000, 0x4001):
            response = transact(client.get(METER, OAD(oi, 2)))
            assert isinstance(response, GetResponseNormal) and response.result.data is not None
            values.update(decode_value(response.result.oad, response.result.data))
    assert values["energy.active.import.total"] == Decimal("1234.56")
    assert values["energy.active.import.t4"] == Decimal("0.04")
    assert values["meter.clock"] == datetime(2026, 12, 6, 10, 0, 0)
    assert values["meter.address"] == METER


_LAYOUTS = {
    "total_tariffs": "total_tariffs",
    "phases": "phases",
    "total_phases": "total_phases",
    "status": "status_words",
    "scalar": "none",
    "record": "none",
}


def test_objects_table_agrees_with_the_peer_catalogue(peer_python: Path) -> None:
    """Class, attribute-2 type, layout and scaler of every object both catalogues know."""
    oids = [f"{oi:04X}" for oi in OBJECTS]
    done = subprocess.run(
        [str(peer_python), str(HERE / "catalog.py"), *oids],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    peer = json.loads(done.stdout)
    compared = 0
    for oi, row in OBJECTS.items():
        theirs = peer[f"{oi:04X}"]
        if theirs is None:  # 301B/301C are not in the peer's catalogue (see docs/dlt698.md)
            continue
        attribute = theirs["attribute2"]
        assert theirs["class"] == row.class_id, (row.name, theirs)
        assert attribute["layout"] == _LAYOUTS[row.layout], (row.name, attribute)
        if row.layout == "record":
            assert attribute["record"], row.name
        elif row.layout == "scalar":
            assert attribute["type"] == row.type, (row.name, attribute)
        else:
            assert attribute["element_type"] == row.type, (row.name, attribute)
        if attribute["scaler"] is not None or row.scaler:
            assert attribute["scaler"] == row.scaler, (row.name, attribute)
            assert attribute["unit"] == row.unit_code, (row.name, attribute)
        compared += 1
    assert compared >= 20
