"""Gateway footprint: CPU and memory of ``taiqu gateway run`` polling 8 buses × 32 meters.

Three processes besides this one: a private mosquitto, the simulated fleet (this script with
``--serve-fleet``, so the simulators' CPU is not the gateway's) and the gateway itself, started as
the service starts it (``taiqu gateway run --config …``, plus ``-X importtime`` so the modules it
loads are known).  This process plays the head-end: it acknowledges every batch, so the store
drains as in the field.

Measured from ``/proc/<pid>`` of the gateway every ``--sample-s`` seconds: CPU (user + system) as a
share of one core, and RSS (at the end also its anonymous and file-backed parts).  The import
baseline is the RSS of a process that imports exactly the modules the gateway imported during the
run, so the daemon's own share is RSS − baseline.  Growth is reported from minute 10 to the end
(the goal is ≤ 2 MB from minute 10 to 60) and, for shortened runs, as a least-squares slope per
minute from minute 2 onwards.

``--tree DIR`` measures the gateway code of another checkout (e.g. a worktree of a base commit;
the fleet and head-end stay this checkout's), and ``--against DIR`` runs this checkout and DIR
side by side, same load and duration, and prints both with ratios.

Run: ``.venv/bin/python bench/gateway_footprint.py [--minutes 60] [--buses 8] [--meters 32]
[--against ../base-worktree]``.
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

BASELINE = """
import importlib, os, sys
names = open(sys.argv[1]).read().split()
failed = 0
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed += 1
print(failed, len(names))
print(open(f"/proc/{os.getpid()}/status").read())
"""


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


def imported_modules(stderr: Path) -> list[str]:
    """The modules a process run with ``-X importtime`` imported, in the order they finished."""
    names = []
    for line in stderr.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def baseline_rss_kb(tree: Path, modules: list[str], work: Path) -> int:
    """RSS of a fresh interpreter that imports ``modules`` from ``tree`` (and nothing else)."""
    names = work / "modules.txt"
    names.write_text("\n".join(modules))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(names)], capture_output=True, text=True, cwd=tree,
        env=env,
    )  # fmt: skip
    failed, total = out.stdout.split("\n", 1)[0].split()
    if int(failed):
        print(f"import baseline: {failed} of {total} names are absent here (optional imports "
              "the gateway tried too, e.g. Windows modules)")  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"baseline failed: {out.stderr[-500:]}")


def memory_kb(pid: int) -> dict[str, int]:
    """RssAnon and RssFile (status) and Pss (smaps_rollup) of ``pid``."""
    out: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile", "Pss"):
                out[key] = int(rest.split()[0])
    return out


def revision(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip() or str(tree)


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
        # no commands are sent; --trust: the head-end's key configured, as in the field
        f'trust_file = "{trust_file(work)}"' if args.trust else "required = false",
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


def trust_file(work: Path) -> Path:
    """A taiqu-trust-v1 file with one fresh head-end key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = {"key_id": "he-bench", "public_key": base64.b64encode(raw).decode(), "not_after": None}
    path = work / "trust.json"
    path.write_text(json.dumps({"format": "taiqu-trust-v1", "keys": [key]}))
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


def run(args: Any) -> dict[str, Any]:
    from tests.services import Mosquitto

    tree = args.tree.resolve()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores, shared with other work); gateway code: "
          f"{tree} at {revision(tree)}")  # fmt: skip
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
        stderr = work / "gateway.stderr"
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
                [sys.executable, "-X", "importtime", taiqu, "gateway", "run", "--config",
                 str(toml), "--log-level", "WARNING"],
                cwd=work, env={**os.environ, "PYTHONPATH": str(tree)}, stderr=stderr.open("wb"),
            )  # fmt: skip
            t0 = time.monotonic()
            samples: list[tuple[float, float, int]] = []  # (s since start, cpu s, rss kB)
            print(f"polling {args.buses} buses × {args.meters} meters at {args.baud} baud, energy "
                  f"every {args.energy_minutes} min, events every {args.events_minutes} min, "
                  f"for {args.minutes} min")  # fmt: skip
            print(f"{'minute':>6} {'CPU %':>6} {'RSS MB':>7} {'records up':>10}")
            next_print = 60.0
            while (elapsed := time.monotonic() - t0) < args.minutes * 60:
                if gw.poll() is not None:
                    tail = stderr.read_text(errors="replace").splitlines()
                    logs = [line for line in tail if not line.startswith("import time:")]
                    raise RuntimeError(f"the gateway exited with {gw.returncode}: {logs[-5:]}")
                samples.append((elapsed, cpu_s(gw.pid), rss_kb(gw.pid)))
                if elapsed >= next_print:
                    prev = min(samples, key=lambda s: abs(s[0] - (elapsed - 60)))
                    cpu = (samples[-1][1] - prev[1]) / max(1e-9, elapsed - prev[0]) * 100
                    print(f"{elapsed / 60:6.1f} {cpu:6.1f} {samples[-1][2] / 1024:7.1f} "
                          f"{headend.records:10d}", flush=True)  # fmt: skip
                    next_print += 60
                time.sleep(args.sample_s)
            memory = memory_kb(gw.pid)
            modules = imported_modules(stderr)
            base = baseline_rss_kb(tree, modules, work)
            result = report(samples, base, args, headend.records)
            result.update(memory, modules=len(modules), revision=revision(tree))
            anon, file = memory["RssAnon"] / 1024, memory["RssFile"] / 1024
            print(f"RSS at the end: {anon:.1f} MB anonymous + {file:.1f} MB file-backed; "
                  f"{len(modules)} modules imported")  # fmt: skip
            return result
        finally:
            if gw is not None and gw.poll() is None:
                gw.send_signal(signal.SIGTERM)
                gw.wait(30)
            if headend is not None:
                headend.close()
            fleet_proc.send_signal(signal.SIGTERM)
            fleet_proc.wait(30)
            broker.stop()


def report(
    samples: list[tuple[float, float, int]], base: int, args: Any, records: int
) -> dict[str, Any]:
    from_s = 120.0
    steady = [s for s in samples if s[0] >= from_s]
    if len(steady) < 2:
        print("run too short for steady-state numbers (need > 2 minutes)")
        return {}
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
    growth = (end - at10[0][2]) if at10 else 0
    if at10 and samples[-1][0] >= 3600 - args.sample_s:
        print(f"RSS growth minute 10 → 60: {growth / 1024:.2f} MB (goal ≤ 2 MB)")
    elif at10:
        print(f"RSS growth minute 10 → {t_b / 60:.0f}: {growth / 1024:.2f} MB (shortened run)")
    print(f"records acknowledged by the head-end: {records}")
    return {"cpu_pct": cpu, "VmRSS": end, "peak": peak, "baseline": base, "own": end - base,
            "growth_from_10": growth, "records": records}  # fmt: skip


ROWS = (  # (label, key, kB → MB)
    ("CPU, minute 2 to the end (% of one core)", "cpu_pct", False),
    ("RSS at the end (MB)", "VmRSS", True),
    ("RSS peak (MB)", "peak", True),
    ("anonymous RSS at the end (MB)", "RssAnon", True),
    ("file-backed RSS at the end (MB)", "RssFile", True),
    ("import baseline (MB)", "baseline", True),
    ("the daemon's own share, RSS − baseline (MB)", "own", True),
    ("RSS growth from minute 10 (MB)", "growth_from_10", True),
    ("modules imported", "modules", False),
    ("records acknowledged", "records", False),
)


def against(args: Any) -> None:
    """This checkout and ``args.against`` side by side; a table of both with ratios."""
    out = Path(tempfile.mkdtemp(prefix="taiqu-footprint-vs-"))
    flags = ["--minutes", str(args.minutes), "--buses", str(args.buses), "--meters",
             str(args.meters), "--baud", str(args.baud), "--energy-minutes",
             str(args.energy_minutes), "--events-minutes", str(args.events_minutes),
             "--sample-s", str(args.sample_s), *(["--trust"] if args.trust else [])]  # fmt: skip
    runs = {"base": args.against.resolve(), "new": args.tree.resolve()}
    procs = {}
    for label, tree in runs.items():
        log = (out / f"{label}.log").open("w")
        cmd = [sys.executable, __file__, *flags, "--tree", str(tree), "--json",
               str(out / f"{label}.json")]  # fmt: skip
        procs[label] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    print(f"running base ({runs['base']}) and new ({runs['new']}) side by side for "
          f"{args.minutes} min{' with a trust file' if args.trust else ''}; logs in {out}",
          flush=True)  # fmt: skip
    for proc in procs.values():
        proc.wait()
    for label in runs:
        print(f"\n--- {label} ---\n{(out / f'{label}.log').read_text()}")
    res = {label: json.loads((out / f"{label}.json").read_text()) for label in runs}
    head = f"| measure | base {res['base']['revision']} | new {res['new']['revision']} |"
    print(f"\n{head} new / base |\n|---|---:|---:|---:|")
    for name, key, mb in ROWS:
        b, n = res["base"].get(key), res["new"].get(key)
        if b is None or n is None:
            continue
        cells = [f"{v / 1024:.1f}" if mb else f"{v:,.1f}" if key == "cpu_pct" else f"{v:,}"
                 for v in (b, n)]  # fmt: skip
        ratio = f"{n / b:.2f}" if b and key not in ("growth_from_10", "modules", "records") else ""
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--buses", type=int, default=8)
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--energy-minutes", type=int, default=1)
    parser.add_argument("--events-minutes", type=int, default=1)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--trust", action="store_true", help="configure a head-end key")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the gateway code to measure")
    parser.add_argument("--against", type=Path, help="a base checkout to run side by side")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-fleet", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fleet:
        asyncio.run(serve_fleet(args.serve_fleet))
    elif args.against:
        against(args)
    else:
        result = run(args)
        if args.json:
            args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
