"""Benchmark: DL/T 698.45 full decodes/s and encodes/s, Taiqu beside the PyPI ``dlt698`` binding.

Usage: ``.venv/bin/python bench/dlt698_codec.py [--seconds S] [--rounds R] [--no-peer]``

The PyPI package ``dlt698`` (a pybind11 binding to a C++17 698.45 library) is installed into its
own virtual environment under ``/tmp/taiqu-bench-dlt698`` (created on first run, never
committed).  Each library runs in its own process through ``bench/_dlt698_peer_worker.py``
(a helper: run_all skips ``_`` files) doing the same work (see there); rounds are interleaved
so load from other processes on the machine hits both alike, and the best round counts.  Prints
absolute rates, Taiqu's ratio to the peer, and whether Taiqu meets the 20,000 decodes/s floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "bench" / "_dlt698_peer_worker.py"
PEER = "dlt698==1.0.1"
FLOOR = 20_000


def peer_python() -> Path:
    """The interpreter of the peer's venv (created and installed if missing)."""
    venv = Path("/tmp/taiqu-bench-dlt698")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", PEER],
            check=True,
        )
    return python


def run(lib: str, python: Path, seconds: float) -> dict[str, float]:
    env = dict(os.environ)
    if lib == "taiqu":
        env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [str(python), str(WORKER), lib, str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd="/tmp",  # so the peer never imports Taiqu's tree by accident
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-peer", action="store_true", help="Taiqu only")
    args = parser.parse_args()
    libs: dict[str, Path] = {"taiqu": Path(sys.executable)}
    if not args.no_peer:
        try:
            libs["dlt698"] = peer_python()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"peer {PEER} unavailable ({exc}); Taiqu only")
    best: dict[str, dict[str, float]] = {lib: {"decode": 0.0, "encode": 0.0} for lib in libs}
    for _ in range(args.rounds):
        for lib, python in libs.items():
            result = run(lib, python, args.seconds)
            for key in ("decode", "encode"):
                best[lib][key] = max(best[lib][key], result[key])
    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.rounds}")
    print(f"{'measurement':16} " + " ".join(f"{lib:>12}" for lib in libs) + "   Taiqu/peer")
    for key, label in (("decode", "full decodes/s"), ("encode", "encodes/s")):
        row = " ".join(f"{best[lib][key]:>12,.0f}" for lib in libs)
        ratio = (
            f"{best['taiqu'][key] / best['dlt698'][key]:.2f}"
            if "dlt698" in best and best["dlt698"][key]
            else "-"
        )
        print(f"{label:16} {row}   {ratio}")
    ok = best["taiqu"]["decode"] >= FLOOR
    print(f"floor {FLOOR:,} full decodes/s: {'met' if ok else 'NOT met'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
