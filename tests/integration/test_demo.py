"""``taiqu demo --port 0`` in a subprocess, as a newcomer meets it in its first two minutes.

While it runs: every area's readings reach the head-end's API, the printed logins work, a signed
command executes; the head-end is killed and the demo's supervisor restarts it (logged) while
the demo keeps running; then, from the back-filled week and the first simulated hours: a prepaid
account with a balance in every area, a reminder delivered to the local sink (and shown sent),
line loss and complete collection for a past day in every area, area2's bypassed meter and
area3's opened-cover meter ranked first among the suspects, the area3 meter-cover openings
(before the gateway's first sweep) at the head-end, and every gateway's ``last_seen`` within two
simulated minutes of the head-end's clock; the story account's ESAM meter disconnected by
prepayment through the secured flow (the simulated ESAM accepted a sealed trip).  SIGTERM then stops it cleanly with status 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
RUN_FOR = 240  # the cap; the test stops the demo as soon as everything was seen
COVER_METER = "202603000500"  # area3: cover opened two days before the start and 90 s in
BYPASS_METER = "202602000001"  # area2: bypassed since three days before the start
STORY_METER = "202601000001"  # area1: the story account's meter, a cost-control (ESAM) meter


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


def _headend_pid(workdir: Path) -> int:
    """The pid of this demo's ``taiqu headend serve`` (found by its config path)."""
    config = str(workdir / "headend.toml")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and config.encode() in args:
            return int(entry.name)
    raise AssertionError(f"no head-end process serving {config}")


def _sim_now(workdir: Path) -> datetime:
    """The head-end's clock now, from the clock line of the demo's headend.toml."""
    clock = tomllib.loads((workdir / "headend.toml").read_text())["clock"]
    wall = datetime.now(UTC) - clock["anchor"]
    return clock["start"] + wall * float(clock["factor"])


def test_demo_shows_every_capability_within_minutes(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    command = [sys.executable, "-m", "taiqu.cli", "demo", "--for", str(RUN_FOR), "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "240"},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode(errors="replace") for line in proc.stdout),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    began = time.monotonic()
    deadline = began + RUN_FOR

    def until(what: str, check: Any, every: float = 1.0) -> Any:
        while True:
            try:
                got = check()
            except (urllib.error.URLError, OSError):
                got = None
            if got:
                return got
            assert proc.poll() is None, (
                f"the demo exited while waiting for {what}:\n{''.join(lines)}"
            )
            assert time.monotonic() < deadline, f"{what} never came:\n{''.join(lines)}"
            time.sleep(every)

    try:
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
        def all_read() -> bool:
            for area in areas:
                latest = _get(f"{base}/api/v1/areas/{area}/latest", token)
                roles = {item["role"] for item in latest["items"]}
                if latest["read"] < 2 or roles != {"area_total", "customer"}:
                    return False
            return True

        until("readings of every area", all_read)
        # commands are signed: a gateway that requires signatures runs an operator's read
        meter = next(
            m["id"]
            for m in _get(f"{base}/api/v1/meters?area={areas[0]}", token)
            if m["role"] == "customer"
        )
        operator = _token(base, "operator", logins["operator"])
        command = _post(f"{base}/api/v1/commands", operator, {"action": "read", "meters": [meter]})
        done = until(
            "the signed read",
            lambda: (
                (c := _get(f"{base}/api/v1/commands/{command['id']}", operator))["state"]
                in {"executed", "failed", "expired"}
                and c
            ),
            every=0.5,
        )
        assert done["state"] == "executed", done

        # the head-end dies: the supervisor restarts it, the demo goes on
        os.kill(_headend_pid(workdir), signal.SIGKILL)
        until("the head-end's restart", lambda: "headend restarted" in "".join(lines), 0.2)
        token = until("the restarted head-end", lambda: _token(base, "demo", logins["demo"]))
        log = (workdir / "supervisor.log").read_text()
        assert "headend killed by signal 9" in log and "headend restarted" in log

        # prepayment: a prepaid account with a balance in every area; a reminder in the sink
        accounts = _get(f"{base}/api/v1/prepay/accounts", token)
        with_balance = {a["area"] for a in accounts if a["mode"] == "prepaid" and a["balance"]}
        assert with_balance == set(areas), accounts
        sink = workdir / "notifications.jsonl"
        until("a reminder in the sink", lambda: sink.exists() and sink.read_text().strip())
        first = json.loads(sink.read_text().splitlines()[0])
        assert first["path"].startswith("/acct-") and first["title"] and first["message"]
        sent = [
            n
            for a in accounts
            for n in _get(f"{base}/api/v1/prepay/accounts/{a['id']}/notifications", token)
            if n["state"] == "sent"
        ]
        assert sent, "no notification is shown as sent"

        # line loss of the back-filled week, in every area, within the first minutes
        today = _sim_now(workdir).astimezone(UTC) + timedelta(hours=8)  # Shanghai date
        span = {"from": (today - timedelta(days=6)).date(), "to": (today - timedelta(1)).date()}
        query = urllib.parse.urlencode(span)

        def past_losses() -> set[str]:
            rows = _get(f"{base}/api/v1/analytics/lineloss?{query}", token)
            got = {r["area"] for r in rows if r["rate"] is not None}
            return got if got == set(areas) else set()

        until("line loss of a past day in every area", past_losses)
        collected = _get(f"{base}/api/v1/analytics/collection?scope=area&{query}", token)
        complete = {r["key"] for r in collected if r["due"] and r["obtained"] == r["due"]}
        assert complete == set(areas), collected  # the back-filled week's collection success

        # the suspects of the back-filled week: the thief and the opened cover ranked first
        def first_suspects() -> dict[str, str]:
            out = {}
            for area in ("area2", "area3"):
                ranked = _get(f"{base}/api/v1/analytics/areas/{area}/suspects", token)["suspects"]
                out[area] = ranked[0]["meter"] if ranked else ""
            return out

        assert until("suspects", lambda: all(first_suspects().values()) and first_suspects()) == {
            "area2": BYPASS_METER,
            "area3": COVER_METER,
        }

        # the cover opened before the gateway's first sweep reached the head-end
        events = until(
            "the area3 cover opening",
            lambda: _get(f"{base}/api/v1/events?type=meter_cover_open&meter={COVER_METER}", token)[
                "items"
            ],
        )
        assert events[0]["details"]["first_contact"] is True and events[0]["end"], events
        until(
            "both cover openings",
            lambda: (
                len(
                    _get(f"{base}/api/v1/events?type=meter_cover_open&meter={COVER_METER}", token)[
                        "items"
                    ]
                )
                == 2
            ),
        )

        # prepayment disconnects the story account's ESAM meter through the secured flow: the
        # simulated ESAM accepted an authentication and a sealed trip (ground truth), and the
        # head-end's audit shows the steps
        control = re.search(r"control on (127\.0\.0\.1:\d+)", "".join(lines))
        assert control, "".join(lines)
        esam_url = f"http://{control.group(1)}/api/esam?meter={STORY_METER}"

        def sealed_trip() -> bool:
            with urllib.request.urlopen(esam_url, timeout=10) as response:
                log = json.loads(response.read())["result"]["log"]
            accepted = [(e["kind"], e.get("action")) for e in log if e["accepted"]]
            return ("control", "TRIP") in accepted and ("authenticate", None) in accepted

        until("the story meter's secured disconnect", sealed_trip)

        def secured_steps() -> list[tuple[str, str]]:
            for listed in _get(f"{base}/api/v1/commands?action=relay_trip", token):
                got = _get(f"{base}/api/v1/commands/{listed['id']}", token)
                steps = [(x["kind"], x["state"]) for x in got.get("steps", [])]
                if any(x["meter"] == STORY_METER for x in got.get("steps", [])):
                    return steps
            return []

        steps = until("the disconnect's steps at the head-end", secured_steps)
        assert ("authenticate", "executed") in steps and ("control", "executed") in steps, steps

        # last_seen moves with every message: within two simulated minutes of the clock's now
        def fresh() -> bool:
            now = _sim_now(workdir)
            gateways = _get(f"{base}/api/v1/gateways", token)
            return len(gateways) == 3 and all(
                abs(now - datetime.fromisoformat(g["last_seen"])) <= timedelta(minutes=2)
                and g["last_status"] is not None
                for g in gateways
            )

        until("fresh last_seen of every gateway", fresh, 0.5)
        elapsed = time.monotonic() - began
        print(f"everything seen {elapsed:.0f} s after the demo started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
    reader.join(5)
    proc.stdout.close()
    assert "stopped cleanly." in "".join(lines)
