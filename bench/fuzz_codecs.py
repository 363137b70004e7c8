"""Coverage-guided fuzzing (atheris / libFuzzer) of every decoder that takes bytes from outside.

Targets (``tests/security/fuzz_targets.py``, shared with the hypothesis runs in ``make test``):
DL/T 645 frame and stream decoders, Modbus RTU frames and register blocks, MQTT payload decoding,
the gateway's command decoding plus signature check.  Each is seeded with golden frames, a
simulated meter's replies and the contract fixtures, runs in its own process, and may raise only
its typed errors; anything else is a crash (libFuzzer saves the input as ``crash-*``).

Usage::

    python bench/fuzz_codecs.py                    # every target, 1,000,000 executions each
    python bench/fuzz_codecs.py --runs 200000 uplink modbus

Prints per target: executions, wall time, executions per second, coverage (libFuzzer's ``cov``
edges and ``ft`` features at the end, and at the first status line as the seed baseline), corpus
size, and crashes.  Known, reported bugs (``KNOWN`` in tests/security/fuzz_targets.py, each pinned
by a strict xfail) are tolerated and counted in the ``known`` column unless ``--strict``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATUS = re.compile(r"#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?")


def child(name: str, runs: int, corpus: Path, tolerate: bool) -> None:
    """Run one target under atheris (this process ends when libFuzzer is done)."""
    import atheris

    with atheris.instrument_imports(include=["protocols", "gateway.signature"]):
        from tests.security.fuzz_targets import KNOWN, TARGETS

    target = TARGETS[name]
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(target.seeds()):
        (corpus / f"seed-{i:04d}").write_bytes(seed)
    known: tuple[type[BaseException], ...] = KNOWN.get(name, ()) if tolerate else ()
    tolerated = [0]

    def one_input(data: bytes) -> None:
        try:
            target.run(data)
        except target.allowed:
            pass
        except known:
            tolerated[0] += 1
            n = tolerated[0]
            if n & (n - 1) == 0:  # libFuzzer exits without unwinding: report as it grows
                print(f"TOLERATED_COUNT {n} (input {data[:40].hex()})", file=sys.stderr)

    atheris.Setup(
        [sys.argv[0], f"-runs={runs}", "-print_final_stats=1", "-max_len=2048", str(corpus)],
        one_input,
    )
    atheris.Fuzz()


def run_target(name: str, runs: int, tolerate: bool) -> dict[str, object]:
    """Fuzz ``name`` in a child process and parse libFuzzer's report."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        args = [sys.executable, __file__, "--child", name, "--runs", str(runs), "--corpus", tmp]
        if not tolerate:
            args.append("--strict")
        started = time.monotonic()
        proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp)
        wall = time.monotonic() - started
    statuses = STATUS.findall(proc.stderr)
    first = next((s for s in statuses if s[1] == "INITED"), statuses[0] if statuses else None)
    last = statuses[-1] if statuses else None
    done = re.search(r"Done (\d+) runs in (\d+) second", proc.stderr)
    tolerated = [int(n) for n in re.findall(r"TOLERATED_COUNT (\d+)", proc.stderr)]
    crashed = proc.returncode != 0
    if crashed:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        print(f"[{name}] CRASH (exit {proc.returncode}):\n{tail}", file=sys.stderr)
    executions = int(done.group(1)) if done else int(last[0]) if last else 0
    return {
        "target": name,
        "executions": executions,
        "seconds": round(wall, 1),
        "exec_per_s": round(executions / wall) if wall else 0,
        "seed_cov": int(first[2]) if first else None,
        "cov": int(last[2]) if last else None,
        "ft": int(last[3]) if last else None,
        "corpus": int(last[4]) if last and last[4] else None,
        "tolerated": max(tolerated, default=0),  # a lower bound (last power of two reported)
        "crashed": crashed,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--strict", action="store_true", help="no tolerated known bugs")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.runs, args.corpus, not args.strict)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris); nothing fuzzed", file=sys.stderr)
        return 1
    from tests.security.fuzz_targets import TARGETS

    names = args.targets or list(TARGETS)
    print(
        f"{'target':16} {'execs':>10} {'s':>7} {'exec/s':>7} {'cov seed→end':>14} "
        f"{'ft':>6} {'corpus':>6} {'known':>6} result"
    )
    failed = 0
    for name in names:
        r = run_target(name, args.runs, not args.strict)
        failed += bool(r["crashed"])
        print(
            f"{r['target']:16} {r['executions']:>10} {r['seconds']:>7} {r['exec_per_s']:>7} "
            f"{str(r['seed_cov']) + '→' + str(r['cov']):>14} {r['ft']!s:>6} {r['corpus']!s:>6} "
            f"{r['tolerated']:>6} {'CRASH' if r['crashed'] else 'ok'}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
