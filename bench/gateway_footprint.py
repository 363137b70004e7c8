"""Gateway footprint: CPU and memory of ``taiqu gateway run`` polling 8 buses × 32 meters.

Three processes besides this one: a private mosquitto, the simulated fleet (this script with
``--serve-fleet``, so the simulators' CPU is not the gateway's) and the gateway itself, started as
the service starts it (``taiqu gateway run --config …``).  This process plays the head-end: it
acknowledges every batch, so the store drains as in the field.

Measured from ``/proc/<pid>`` of the gateway every ``--sample-s`` seconds: CPU (user + system) as a
share of one core, and RSS.  The baseline is the RSS of a process that only imports what the
gateway imports.  Growth is reported from minute 10 to the end (the goal is ≤ 2 MB from minute 10
to 60) and, for shortened runs, as a least-squares slope per minute from minute 2 onwards.

Run: ``.venv/bin/python bench/gateway_footprint.py [--minutes 60] [--buses 8] [--meters 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPORTS = (
    "import gateway.cli, gateway.daemon.app, gateway.uplink, gateway.store, "
    "gateway.polling.dlt645, gateway.polling.modbus, gateway.daemon.metrics, gateway.commands, "
    "gateway.daemon.notify, serial"
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def baseline_rss_kb() -> int:
    code = f"{IMPORTS}\nimport os\nprint(open(f'/proc/{{os.getpid()}}/status').read())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"baseline failed: {out.stderr[-500:]}")


# -- the fleet process ---------------------------------------------------------------------------


def fleet_doc(buses: int, meters: int, baud: int) -> dict[str, Any]:
    return {
        "areas": [{"name": "a1", "gateway_id": "gw-bench"}],
        "buses": [
            {"name": f"bus{b + 1}", "area": "a1", "baud": baud, "parity": "E"} for b in range(buses)
        ],
        "meters": [
            {
                "bus": f"bus{b + 1}",
                "protocol": "dlt645-2007",
                "address": f"2026{b + 1:02d}240001",
                "count": meters,
                "response_delay_ms": 50,
            }
            for b in range(buses)
        ],
    }


async def serve_fleet(spec_path: Path) -> None:
    from simulators.config import parse_config
    from simulators.fleet import start_fleet

    spec = json.loads(spec_path.read_text())
    config = parse_config(fleet_doc(spec["buses"], spec["meters"], spec["baud"]), "bench fleet")
    async with start_fleet(config) as fleet:
        meters = [
            {"id": i, "bus": fleet.meter_bus[i], "address": m.address}
            for i, m in fleet.meters.items()
        ]
        out = {"endpoints": fleet.endpoints, "meters": meters}
        tmp = spec_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out))
        tmp.rename(spec_path.with_suffix(".ready"))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


# -- the head-end --------------------------------------------------------------------------------


class HeadEnd:
    """Acknowledges every batch and counts records."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from protocols.uplink import Ack, Batch, decode_message, encode
        from protocols.uplink.topics import HEADEND_UP, Topics

        self.records = 0
        self.lock = threading.Lock()

        def on_message(client: Any, _u: Any, msg: Any) -> None:
            gateway, _kind, message = decode_message(msg.topic, bytes(msg.payload))
            if isinstance(message, Batch):
                with self.lock:
                    self.records += len(message.records)
                ack = Ack(epoch=message.epoch, upto=message.last_seq)
                client.publish(Topics(gateway).ack, encode(ack), qos=1)

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-headend")
        self.client.on_connect = lambda c, *_: c.subscribe(HEADEND_UP, qos=1)
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def gateway_toml(work: Path, fleet: dict[str, Any], broker_port: int, args: Any) -> Path:
    lines = [
        'gateway_id = "gw-bench"',
        'clock = "real"',
        f'data_dir = "{work / "gw"}"',
        "[broker]",
        f"port = {broker_port}",
        "[schedule]",
        f"energy_minutes = {args.energy_minutes}",
        f"events_minutes = {args.events_minutes}",
        "backfill_days = 7",
        "[clock_trust]",
        'source = "trusted"',
        "[signatures]",
        "required = false",  # a bench with simulated meters: no head-end keys, no commands
    ]
    for name, url in fleet["endpoints"].items():
        lines += ["[[buses]]", f'name = "{name}"', f'port = "{url}"', f"baud = {args.baud}"]
    for m in fleet["meters"]:
        lines += [
            "[[meters]]",
            f'bus = "{m["bus"]}"',
            'protocol = "dlt645-2007"',
            f'address = "{m["address"]}"',
        ]
    path = work / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per minute) of (seconds, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 60 if sxx else 0.0


def run(args: Any) -> None:
    from tests.services import Mosquitto

    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores, shared with other work)")
    base = baseline_rss_kb()
    print(f"import baseline RSS: {base / 1024:.1f} MB (a process importing the gateway's modules)")
    with tempfile.TemporaryDirectory(prefix="taiqu-footprint-") as tmp:
        work = Path(tmp)
        broker = Mosquitto("/usr/sbin/mosquitto", work / "mq")
        broker.workdir.mkdir()
        broker.start()
        spec = work / "fleet.json"
        spec.write_text(json.dumps({"buses": args.buses, "meters": args.meters, "baud": args.baud}))
        fleet_proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-fleet", str(spec)], cwd=ROOT
        )
        gw: subprocess.Popen[bytes] | None = None
        headend: HeadEnd | None = None
        try:
            ready = spec.with_suffix(".ready")
            deadline = time.monotonic() + 120
            while not ready.exists():
                if time.monotonic() > deadline or fleet_proc.poll() is not None:
                    raise RuntimeError("the fleet did not start")
                time.sleep(0.2)
            fleet = json.loads(ready.read_text())
            toml = gateway_toml(work, fleet, broker.port, args)
            headend = HeadEnd(broker.port)
            taiqu = str(Path(sys.executable).with_name("taiqu"))
            gw = subprocess.Popen(
                [taiqu, "gateway", "run", "--config", str(toml), "--log-level", "WARNING"],
                cwd=work,
            )
            t0 = time.monotonic()
            samples: list[tuple[float, float, int]] = []  # (s since start, cpu s, rss kB)
            print(f"polling {args.buses} buses × {args.meters} meters at {args.baud} baud, energy "
                  f"every {args.energy_minutes} min, events every {args.events_minutes} min, "
                  f"for {args.minutes} min")  # fmt: skip
            print(f"{'minute':>6} {'CPU %':>6} {'RSS MB':>7} {'records up':>10}")
            next_print = 60.0
            while (elapsed := time.monotonic() - t0) < args.minutes * 60:
                if gw.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {gw.returncode}")
                samples.append((elapsed, cpu_s(gw.pid), rss_kb(gw.pid)))
                if elapsed >= next_print:
                    prev = min(samples, key=lambda s: abs(s[0] - (elapsed - 60)))
                    cpu = (samples[-1][1] - prev[1]) / max(1e-9, elapsed - prev[0]) * 100
                    print(f"{elapsed / 60:6.1f} {cpu:6.1f} {samples[-1][2] / 1024:7.1f} "
                          f"{headend.records:10d}", flush=True)  # fmt: skip
                    next_print += 60
                time.sleep(args.sample_s)
            report(samples, base, args, headend.records)
        finally:
            if gw is not None and gw.poll() is None:
                gw.send_signal(signal.SIGTERM)
                gw.wait(30)
            if headend is not None:
                headend.close()
            fleet_proc.send_signal(signal.SIGTERM)
            fleet_proc.wait(30)
            broker.stop()


def report(samples: list[tuple[float, float, int]], base: int, args: Any, records: int) -> None:
    from_s = 120.0
    steady = [s for s in samples if s[0] >= from_s]
    if len(steady) < 2:
        print("run too short for steady-state numbers (need > 2 minutes)")
        return
    (t_a, c_a, _), (t_b, c_b, _) = steady[0], steady[-1]
    cpu = (c_b - c_a) / (t_b - t_a) * 100
    peak = max(s[2] for s in samples)
    end = samples[-1][2]
    print(f"\nCPU, minute 2 to {t_b / 60:.0f}: {cpu:.1f} % of one core ({cpu_name()})")
    print(f"RSS at the end: {end / 1024:.1f} MB (peak {peak / 1024:.1f} MB); import baseline "
          f"{base / 1024:.1f} MB, so the daemon's own share is {(end - base) / 1024:.1f} MB; "
          f"goal ≤ 80 MB")  # fmt: skip
    slope = slope_per_minute([(s[0], s[2] / 1024) for s in steady])
    print(f"RSS growth from minute 2: {slope * 1000:.1f} kB/min (least squares), i.e. "
          f"{slope * 50:.2f} MB over 50 minutes")  # fmt: skip
    at10 = [s for s in samples if s[0] >= 600]
    if at10 and samples[-1][0] >= 3600 - args.sample_s:
        print(f"RSS growth minute 10 → 60: {(end - at10[0][2]) / 1024:.2f} MB (goal ≤ 2 MB)")
    elif at10:
        print(f"RSS growth minute 10 → {t_b / 60:.0f}: {(end - at10[0][2]) / 1024:.2f} MB "
              "(shortened run)")  # fmt: skip
    print(f"records acknowledged by the head-end: {records}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--buses", type=int, default=8)
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--energy-minutes", type=int, default=1)
    parser.add_argument("--events-minutes", type=int, default=1)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--serve-fleet", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fleet:
        asyncio.run(serve_fleet(args.serve_fleet))
    else:
        run(args)


if __name__ == "__main__":
    main()
