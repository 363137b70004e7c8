"""Benchmark: DL/T 645 full decodes/s and encodes/s, Taiqu beside the PyPI libraries.

Usage: ``.venv/bin/python bench/dlt645_codec.py [--seconds S] [--rounds R] [--no-peers]``

Each PyPI package (``dlt645``, ``python-dlt645``; both install a module named ``dlt645``) is
installed into its own virtual environment under ``/tmp/taiqu-bench-<name>`` (created on first
run, never committed).  Every library runs in its own process through
``bench/dlt645_peer_worker.py``, doing the same work (see there); rounds are interleaved so
load from other processes on the machine hits every library alike, and the best round counts.
Prints absolute rates and Taiqu's ratio to each peer.
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
WORKER = ROOT / "bench" / "dlt645_peer_worker.py"
PEERS = ("dlt645", "python-dlt645")
FLOOR = 20_000


def peer_python(name: str) -> Path:
    """The interpreter of the venv holding ``name`` (created and installed if missing)."""
    venv = Path(f"/tmp/taiqu-bench-{name}")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", name],
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
        cwd="/tmp",  # so a peer never imports Taiqu's tree by accident
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-peers", action="store_true", help="measure Taiqu only")
    args = parser.parse_args()

    libs: dict[str, Path] = {"taiqu": Path(sys.executable)}
    if not args.no_peers:
        for name in PEERS:
            try:
                libs[name] = peer_python(name)
            except subprocess.CalledProcessError as exc:
                print(f"# {name}: cannot install ({exc}); skipped", file=sys.stderr)

    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for lib, python in libs.items():
            result = run(lib, python, args.seconds)
            mine = best.setdefault(lib, {"decodes_per_s": 0.0, "encodes_per_s": 0.0})
            for key in mine:
                mine[key] = max(mine[key], result[key])

    print(
        f"# DL/T 645 codec benchmark ({platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, best of {args.rounds} rounds)"
    )
    print(f"{'library':<16}{'decodes/s':>14}{'encodes/s':>14}")
    for lib, r in best.items():
        print(f"{lib:<16}{r['decodes_per_s']:>14,.0f}{r['encodes_per_s']:>14,.0f}")
    taiqu = best["taiqu"]
    for lib, r in best.items():
        if lib != "taiqu":
            print(
                f"taiqu / {lib}: decode ×{taiqu['decodes_per_s'] / r['decodes_per_s']:.2f}, "
                f"encode ×{taiqu['encodes_per_s'] / r['encodes_per_s']:.2f}"
            )
    verdict = "meets" if taiqu["decodes_per_s"] >= FLOOR else "BELOW"
    print(f"floor {FLOOR:,} full decodes/s: {verdict}")


if __name__ == "__main__":
    main()
