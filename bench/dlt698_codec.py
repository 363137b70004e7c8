"""Benchmark: DL/T 698.45 full decodes/s and encodes/s, Taiqu beside the PyPI ``dlt698`` binding.

Usage: ``.venv/bin/python bench/dlt698_codec.py [--seconds S] [--rounds R] [--no-peers]``

The PyPI package ``dlt698`` (a pybind11 binding to a C++17 698.45 library) is installed into its
own virtual environment under ``/tmp/taiqu-bench-dlt698`` (created on first run, never
committed).  Each library runs in its own process through ``bench/_dlt698_peer_worker.py``
(a helper: run_all skips ``_`` files) doing the same work (see there); rounds are interleaved
so load from other processes on the machine hits both alike, and the best round counts.  Prints
absolute rates, Taiqu's ratio to the peer, and whether Taiqu meets the 20,000 decodes/s floor
(exit status 1 if not); the machinery is ``bench/_peers.py``'s.
"""

from __future__ import annotations

from pathlib import Path

from _peers import ROOT, compare

PEERS = {"dlt698": (Path("/tmp/taiqu-bench-dlt698"), "dlt698==1.0.1")}

if __name__ == "__main__":
    compare("DL/T 698.45 codec benchmark", ROOT / "bench" / "_dlt698_peer_worker.py", PEERS, 20_000)
