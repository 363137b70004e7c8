"""Request bodies are bounded before parsing and authentication (``headend.api.limits``).

The in-process tests drive the ASGI app; the last one runs the head-end under uvicorn in a
subprocess, offers it an unauthenticated 150 MB body (with and without Content-Length) and reads
the server's peak resident memory (``VmHWM``) from /proc: it must stay within 40 MB of its peak
before the attack (before the limit the process grew from ~116 MB to ~990 MB).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from headend.api.limits import BodyLimit
from headend.app import create_app
from headend.config import ApiSettings, DatabaseSettings, Settings
from tests.services import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024
IMPORT_LIMIT = 256 * 1024
ATTACK = 150 * 1024 * 1024
GROWTH_BOUND = 40 * 1024 * 1024


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "s" * 40)
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"),
        api=ApiSettings(max_body_bytes=LIMIT, max_import_bytes=IMPORT_LIMIT),
    )
    with TestClient(create_app(settings, ingest=False)) as c:
        yield c


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b" " * n
        sent += n


def test_a_declared_length_over_the_limit_is_refused_before_authentication(client):
    r = client.post(
        "/api/v1/commands",
        content=b"{" + b" " * LIMIT + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413  # not 401: nothing was parsed or authenticated
    assert str(LIMIT) in r.json()["detail"]


def test_a_streamed_body_is_counted_and_refused_past_the_limit(client):
    r = client.post(
        "/api/v1/auth/token",
        content=chunks(LIMIT * 4),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert (
        "transfer-encoding" not in r.request.headers
        or r.request.headers["transfer-encoding"] == "chunked"
    )


def test_bodies_within_the_limit_reach_the_endpoint(client):
    r = client.post("/api/v1/commands", json={"action": "relay_trip", "meters": ["m1"]})
    assert r.status_code == 401  # authentication, as before
    r = client.post("/login", data={"username": "x", "password": "y" * 100})
    assert r.status_code != 413


def test_the_import_has_its_own_larger_limit(client):
    body = b"id,area,bus,address\n" + b"x" * (LIMIT * 2)
    r = client.post("/api/v1/meters/import", content=body)
    assert r.status_code == 401  # within the import limit: on to authentication
    r = client.post("/api/v1/meters/import", content=b"x" * (IMPORT_LIMIT + 1))
    assert r.status_code == 413
    r = client.post("/api/v1/areas", content=b"x" * (LIMIT * 2))
    assert r.status_code == 413


def test_a_malformed_content_length_is_a_bad_request():
    sent: list[dict] = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the application must not see this request")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    import asyncio

    scope = {"type": "http", "path": "/x", "headers": [(b"content-length", b"12abc")]}
    asyncio.run(BodyLimit(app, 1024)(scope, receive, send))
    assert sent[0]["status"] == 400


# --- the whole server, measured -------------------------------------------------------------

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from headend.app import create_app
    from headend.config import DatabaseSettings, Settings
    settings = Settings(database=DatabaseSettings(url=sys.argv[1]))
    uvicorn.run(create_app(settings, ingest=False), host="127.0.0.1", port=int(sys.argv[2]),
                log_level="warning")
    """
)


def _rss_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the head-end exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the head-end did not start listening")


def _offer(port: int, head: bytes, total: int, chunked: bool) -> bytes:
    """Send ``head`` then up to ``total`` body bytes; return whatever the server answered."""
    sock = socket.create_connection(("127.0.0.1", port), 10)
    answer = b""
    try:
        sock.sendall(head)
        piece = b" " * (256 * 1024)
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            data = piece if not chunked else b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                sock.sendall(data)
            except OSError:
                break
            sent += len(piece)
        sock.settimeout(20)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except OSError:
            pass
    finally:
        sock.close()
    return answer


def test_an_unauthenticated_150_mb_body_does_not_grow_the_server(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "TAIQU_HEADEND_SECRET": "s" * 40, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"sqlite:///{tmp_path / 'h.db'}", str(port)],
        env=env,
        stderr=log,
    )
    try:
        _wait_listening(port, proc)
        warm = _offer(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0, False)
        assert b" 200 " in warm.split(b"\r\n")[0]
        before = _rss_peak(proc.pid)
        stated = (
            b"POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % ATTACK
        )
        streamed = (
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        answers = [
            _offer(port, head, ATTACK, chunked)
            for head, chunked in ((stated, False), (streamed, True))
        ]
        after = _rss_peak(proc.pid)
        assert proc.poll() is None
        print(f"peak RSS before {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB")
        assert after - before < GROWTH_BOUND, (before, after)
        for answer in answers:
            assert answer.split(b"\r\n")[0].split(b" ")[1] == b"413", answer[:200]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
