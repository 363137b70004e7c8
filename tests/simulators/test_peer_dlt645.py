"""A peer implementation: the PyPI ``dlt645`` package (client and meter server) against Taiqu.

The package lives in its own venv, created here once and cached (``TAIQU_PEER_CACHE`` or the
temp dir), never imported into Taiqu; ``peers/dlt645_peer.py`` runs under its interpreter.
Without network access to PyPI the tests skip and say why.  What they pin down about the peer
is written up in docs/simulators.md ("Peer check: PyPI dlt645").
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from protocols.dlt645 import NEED_DATA, AbnormalReply, Master, ReadAddress, ReadData, ReadReply
from simulators.config import quick_config
from simulators.fleet import start_fleet

pytestmark = pytest.mark.integration
PEER = "dlt645==3.2.0"
SCRIPT = Path(__file__).parent / "peers" / "dlt645_peer.py"
NAMEPLATE = "202611240009"


def wire_order(address: str) -> str:
    """The address string the peer wants: the bytes as they travel, i.e. reversed pairs."""
    return "".join(reversed([address[i : i + 2] for i in range(0, 12, 2)]))


@pytest.fixture(scope="session")
def peer_python() -> Path:
    """The interpreter of a venv holding the peer (created once, then reused)."""
    root = Path(os.environ.get("TAIQU_PEER_CACHE", Path(tempfile.gettempdir()) / "taiqu-peers"))
    venv = root / PEER.replace("==", "-")
    python = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions build it once
        if not (venv / ".installed").exists():
            made = subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True
            )
            if made.returncode != 0:
                pytest.skip(f"cannot create a venv for the peer here: {made.stderr.strip()[-200:]}")
            pip = subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--retries",
                    "1",
                    "--timeout",
                    "20",
                    PEER,
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if pip.returncode != 0:
                tail = (pip.stderr or pip.stdout).strip().splitlines()[-1:] or ["no output"]
                pytest.skip(f"cannot install the peer {PEER} from PyPI here: {tail[0]}")
            (venv / ".installed").touch()
    return python


def _peer(python: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(python), str(SCRIPT), *args], cwd=tempfile.gettempdir(), text=True, **kwargs
    )


async def test_the_peer_client_reads_a_taiqu_meter(peer_python):
    async with start_fleet(quick_config(meters=2)) as fleet:  # paced at 2400 baud
        meter = fleet.meters["202611240001"]
        host, port = fleet.endpoints["bus1"].removeprefix("socket://").split(":")
        before = fleet.control.truth_meter(meter.id)["import_register_end"]
        done = await asyncio.to_thread(
            subprocess.run,
            [str(peer_python), str(SCRIPT), "client", host, port, wire_order(meter.address)],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
            timeout=120,
        )
        after = fleet.control.truth_meter(meter.id)["import_register_end"]
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert before - 0.01 <= got["energy.active.import.total"] <= after
    assert got["energy.active.export.total"] == 0.0
    assert 200 < got["voltage.a"] < 240 and 49.9 <= got["frequency"] <= 50.1
    assert got["power.active.total"] == pytest.approx(
        got["voltage.a"] * got["current.a"] * 0.95 / 1000, rel=0.01
    )
    assert fleet.meters["202611240002"].reads == {}  # only the addressed meter answered


@pytest.fixture
def peer_server(peer_python) -> Iterator[int]:
    """The peer's meter server on a free port, serving nameplate ``NAMEPLATE``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = _peer(peer_python, "server", str(port), wire_order(NAMEPLATE), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _ask(port: int, request: object) -> object:
    master = Master()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(master.send(request))  # type: ignore[arg-type]
        end = time.monotonic() + 2
        while time.monotonic() < end:
            master.receive_data(sock.recv(512))
            event = master.next_event()
            if event is not NEED_DATA:
                return event
    return None


def test_what_the_peer_meter_server_answers_a_taiqu_master(peer_server):
    energy = _ask(peer_server, ReadData(NAMEPLATE, 0x00010000))
    assert isinstance(energy, ReadReply)
    assert energy.values["energy.active.import.total"] == Decimal("1234.56")
    voltage = _ask(peer_server, ReadData(NAMEPLATE, 0x02010100))
    assert isinstance(voltage, ReadReply) and voltage.values["voltage.a"] == Decimal("231.4")
    unset = _ask(peer_server, ReadData(NAMEPLATE, 0x00010100))  # never set: zeros, not refused
    assert isinstance(unset, ReadReply) and unset.values["energy.active.import.t1"] == 0
    block = _ask(peer_server, ReadData(NAMEPLATE, 0x0001FF00))  # no block support
    assert isinstance(block, AbnormalReply) and block.reasons == ("no_requested_data",)
    frozen = _ask(peer_server, ReadData(NAMEPLATE, 0x05060101))  # no daily frozen data
    assert isinstance(frozen, AbnormalReply) and frozen.reasons == ("other_error",)
    other = _ask(peer_server, ReadData("202611240001", 0x00010000))  # another meter's address
    assert isinstance(other, AbnormalReply)  # it answers (a real meter on a bus stays silent)
    address = _ask(peer_server, ReadAddress())
    assert address is not None and address.address == NAMEPLATE
