"""``taiqu demo --for 45 --port 0`` in a subprocess: every area's readings reach the head-end's
API while it runs, the printed logins work, and it stops cleanly with status 0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
RUN_FOR = 45


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, token: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _token(base: str, name: str, password: str) -> str:
    data = urllib.parse.urlencode({"username": name, "password": password}).encode()
    with urllib.request.urlopen(f"{base}/api/v1/auth/token", data=data, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def test_demo_runs_shows_every_area_and_stops_cleanly(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "taiqu.cli", "demo", "--for", str(RUN_FOR), "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode(errors="replace") for line in proc.stdout),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + RUN_FOR
        logins: dict[str, str] = {}
        base = ""
        while len(logins) < 3:
            text = "".join(lines)
            if m := re.search(r"console: (http://127\.0\.0\.1:\d+)/", text):
                base = m.group(1)
            logins = dict(re.findall(r"login\s+(\w+)\s+/\s+(\S+)", text))
            assert proc.poll() is None, f"the demo exited early:\n{text}"
            assert time.monotonic() < deadline, f"no console URL and logins printed:\n{text}"
            time.sleep(0.2)
        assert set(logins) == {"demo", "operator", "supervisor"} and base
        for name, password in logins.items():  # every printed login works
            assert _token(base, name, password)
        token = _token(base, "demo", logins["demo"])
        areas = [a["id"] for a in _get(f"{base}/api/v1/areas", token)]
        assert len(areas) == 3
        # every area's meters read, its area total meter among them (a sweep may arrive in parts)
        seen: dict[str, int] = {}
        while len(seen) < len(areas):
            for area in areas:
                latest = _get(f"{base}/api/v1/areas/{area}/latest", token)
                roles = {item["role"] for item in latest["items"]}
                if latest["read"] >= 2 and roles == {"area_total", "customer"}:
                    seen[area] = latest["read"]
            if len(seen) < len(areas):
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"readings of {sorted(set(areas) - set(seen))} never arrived"
                )
                time.sleep(1)
        gateways = _get(f"{base}/api/v1/gateways", token)
        assert len(gateways) == 3
        # commands are signed: a gateway that requires signatures runs an operator's read
        meter = next(
            m["id"]
            for m in _get(f"{base}/api/v1/meters?area={areas[0]}", token)
            if m["role"] == "customer"
        )
        operator = _token(base, "operator", logins["operator"])
        command = _post(f"{base}/api/v1/commands", operator, {"action": "read", "meters": [meter]})
        while (done := _get(f"{base}/api/v1/commands/{command['id']}", operator))["state"] not in {
            "executed",
            "failed",
            "expired",
        }:
            assert proc.poll() is None and time.monotonic() < deadline, f"command stuck: {done}"
            time.sleep(0.5)
        assert done["state"] == "executed", done
        assert proc.wait(timeout=RUN_FOR + 20) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
    reader.join(5)
    proc.stdout.close()
    assert "stopped cleanly." in "".join(lines)
