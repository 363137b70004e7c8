"""``make bench``: run every benchmark, soak and fault campaign in bench/, one after another.

Each script prints its own numbers (and ratios against a baseline measured in the same run).
Pass names to run a subset: ``python bench/run_all.py dlt645 sim``.  Scripts whose name starts with
``_`` are helpers, not benchmarks.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("_", "run_all")))
    if argv:
        scripts = [p for p in scripts if any(p.stem.startswith(a) for a in argv)]
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.name}: exit {code} in {time.monotonic() - started:.1f}s", flush=True)
        if code:
            failed.append(script.name)
    print(f"\n{len(scripts) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
