"""What the codec benchmarks against PyPI peers share (a helper: run_all skips ``_`` files).

A bench (``dlt645_codec.py``, ``dlt698_codec.py``) installs each peer into its own venv under
``/tmp`` (created on first run, never committed), runs one worker process per library with that
library's interpreter, interleaves rounds so load from other processes hits every library alike,
keeps each library's best round and prints rates, Taiqu's ratio to each peer and the floor.
A worker times ``decode`` and ``encode`` with ``rate`` and prints one JSON line.  Stdlib only:
workers import this module from the peers' interpreters too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = (("decodes_per_s", "full decodes/s"), ("encodes_per_s", "encodes/s"))


def peer_python(venv: Path, spec: str) -> Path:
    """The interpreter of ``venv`` holding the PyPI package ``spec`` (installed if missing)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", spec],
            check=True,
        )
    return python


def run_worker(worker: Path, lib: str, python: Path, seconds: float) -> dict[str, float]:
    """One worker run: ``lib`` timed for ``seconds`` a measurement, its JSON line parsed."""
    env = dict(os.environ)
    if lib == "taiqu":
        env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [str(python), str(worker), lib, str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd="/tmp",  # so a peer never imports Taiqu's tree by accident
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(title: str, worker: Path, peers: Mapping[str, tuple[Path, str]], floor: int) -> None:
    """Parse the bench's options, measure Taiqu and each peer (venv, spec), report, exit."""
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-peers", action="store_true", help="measure Taiqu only")
    args = parser.parse_args()
    libs: dict[str, Path] = {"taiqu": Path(sys.executable)}
    if not args.no_peers:
        for name, (venv, spec) in peers.items():
            try:
                libs[name] = peer_python(venv, spec)
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"# {name}: cannot install ({exc}); skipped", file=sys.stderr)
    best = {lib: dict.fromkeys((k for k, _ in KEYS), 0.0) for lib in libs}
    for _ in range(args.rounds):
        for lib, python in libs.items():
            result = run_worker(worker, lib, python, args.seconds)
            for key, _label in KEYS:
                best[lib][key] = max(best[lib][key], result[key])
    print(
        f"# {title} ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, best of {args.rounds} rounds)"
    )
    print(f"{'library':<16}" + "".join(f"{label:>16}" for _, label in KEYS))
    for lib, r in best.items():
        print(f"{lib:<16}" + "".join(f"{r[key]:>16,.0f}" for key, _ in KEYS))
    taiqu = best["taiqu"]
    for lib, r in best.items():
        if lib != "taiqu":
            ratios = ", ".join(f"{label} ×{taiqu[key] / r[key]:.2f}" for key, label in KEYS)
            print(f"taiqu / {lib}: {ratios}")
    ok = taiqu["decodes_per_s"] >= floor
    print(f"floor {floor:,} full decodes/s: {'met' if ok else 'NOT met'}")
    raise SystemExit(0 if ok else 1)


def rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second: best of three runs of at least ``seconds / 3`` each."""
    n, best = 200, 0.0
    for _ in range(3):
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            took = time.perf_counter() - start
            if took >= seconds / 3:
                break
            n *= 2
        best = max(best, n / took)
    return best


def worker_report(lib: str, decode: Callable[[], Any], encode: Callable[[], Any], s: float) -> None:
    """Print a worker's JSON line (its result checks come first, in the worker)."""
    out = {"lib": lib, "decodes_per_s": rate(decode, s), "encodes_per_s": rate(encode, s)}
    print(json.dumps(out))
