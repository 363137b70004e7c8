"""Secured (ESAM) vs plaintext relay trip end to end on loopback: real gateway, mosquitto, head-end.

What it measures: ``POST /api/v1/commands`` returned (command created) → the command is
``executed`` with the relay read back by the gateway (polled through the API every 20 ms), for a
cost-control meter flagged ``esam`` (authenticate → the laboratory encryption service seals →
sealed 1CH → read-back: three dispatcher hops) and, as the baseline of the same run, for an
ordinary meter (plaintext 1CH → read-back: one hop).  Runs alternate ESAM/plaintext so both see
the same load; each trip is followed by an (untimed) reclose.  The system is the one
``tests/integration/test_e2e_esam.py`` assembles: mosquitto with the shipped ACL and passwords,
the head-end's ``serve`` parts on uvicorn with ``[commands] dispatch_interval`` at its default
(1 s) and a real-time clock, the simulated fleet with a software ESAM.  The simulated meter
trips at once (no trip delay), so the issue's goal is p95 < 3 s.

    .venv/bin/python bench/esam_latency.py [--runs 50] [--dispatch-interval 1.0]
        [--step-poll-interval 0.1]   # 1.0: every hop waits a dispatch interval (before the fix)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def trip_once(rig: Any, meter: str, action: str, expect: str) -> float:
    """Seconds from the command's creation to its ``executed`` state with ``expect`` read back."""
    api = rig.rig.api
    began = time.perf_counter()
    r = await api.post("/api/v1/commands", json={"action": action, "meters": [meter]})
    assert r.status_code == 201, r.text
    command_id = r.json()["id"]
    deadline = began + 60
    while True:
        body = (await api.get(f"/api/v1/commands/{command_id}")).json()
        if body["state"] in ("executed", "failed", "expired"):
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{command_id} still {body['state']} after 60 s")
        await asyncio.sleep(0.02)
    took = time.perf_counter() - began
    if body["state"] != "executed" or rig.relay(meter) != expect:
        raise RuntimeError(f"{action} on {meter}: {body['state']} {body['targets']}")
    return took


async def run(
    runs: int, interval: float, poll: float, binary: str, tmp: Path
) -> dict[str, list[float]]:
    from tests.integration.esam_support import ESAM, PLAIN, running, start_broker

    broker = start_broker(binary, tmp)
    results: dict[str, list[float]] = {"secured": [], "plaintext": []}
    try:
        guards = {  # 200 trips an hour by one operator: no rate limit, no approval
            "hourly_limit_area": 10_000,
            "hourly_limit_fleet": 10_000,
            "supervisor_window_minutes": 0,
        }
        commands = {"dispatch_interval": interval, "step_poll_interval": poll}
        extra = {"guards": guards, "commands": commands}
        async with running(broker, tmp, factor=1, plain=True, extra=extra) as rig:
            for i in range(runs + 1):  # the first round warms up and is not counted
                for kind, meter in (("secured", ESAM), ("plaintext", PLAIN)):
                    took = await trip_once(rig, meter, "relay_trip", "open")
                    await trip_once(rig, meter, "relay_close_direct", "closed")
                    if i:
                        results[kind].append(took)
    finally:
        broker.server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--dispatch-interval", type=float, default=1.0)
    parser.add_argument(
        "--step-poll-interval", type=float, default=0.1, help="= dispatch interval: as before"
    )
    args = parser.parse_args()
    binary = shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if binary is None:
        print("esam_latency: mosquitto is not installed; skipped")
        return 0
    import logging

    logging.disable(logging.WARNING)  # the laboratory service's warning, once per start
    with tempfile.TemporaryDirectory(prefix="esam-latency-") as tmp:
        results = asyncio.run(
            run(args.runs, args.dispatch_interval, args.step_poll_interval, binary, Path(tmp))
        )
    base = statistics.median(results["plaintext"])
    print(
        f"relay trip, command created → relay read back, {args.runs} runs each, "
        f"dispatch_interval {args.dispatch_interval:g} s, step_poll_interval "
        f"{args.step_poll_interval:g} s, loopback mosquitto + gateway + head-end"
    )
    print(f"{'':10} {'p50':>8} {'p95':>8} {'max':>8} {'p50 ratio':>10}")
    for kind in ("plaintext", "secured"):
        values = results[kind]
        p50 = statistics.median(values)
        print(f"{kind:10} {p50:7.3f}s {p95(values):7.3f}s {max(values):7.3f}s {p50 / base:9.2f}x")
    ok = p95(results["secured"]) < 3.0
    print(f"goal p95 < 3 s (the simulated meter has no trip delay): {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
