"""Benchmark: DL/T 645 full decodes/s and encodes/s, Taiqu beside the PyPI libraries.

Usage: ``.venv/bin/python bench/dlt645_codec.py [--seconds S] [--rounds R] [--no-peers]``

Each PyPI package (``dlt645``, ``python-dlt645``; both install a module named ``dlt645``) is
installed into its own virtual environment under ``/tmp/taiqu-bench-<name>`` (created on first
run, never committed).  Every library runs in its own process through
``bench/_dlt645_peer_worker.py``, doing the same work (see there); rounds are interleaved so
load from other processes on the machine hits every library alike, and the best round counts.
Prints absolute rates, Taiqu's ratio to each peer and whether Taiqu meets the 20,000 full
decodes/s floor (exit status 1 if not); the machinery is ``bench/_peers.py``''s.
"""

from __future__ import annotations

from pathlib import Path

from _peers import ROOT, compare

PEERS = {name: (Path(f"/tmp/taiqu-bench-{name}"), name) for name in ("dlt645", "python-dlt645")}

if __name__ == "__main__":
    compare("DL/T 645 codec benchmark", ROOT / "bench" / "_dlt645_peer_worker.py", PEERS, 20_000)
