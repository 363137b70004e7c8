"""Peak memory of the head-end offered an unauthenticated 150 MB body, with and without the limit.

Starts the head-end under uvicorn in a subprocess twice in the same run: as shipped
(``headend.api.limits.BodyLimit`` in front) and, as the baseline, with that middleware taken out
of the app before start-up (what the head-end was before issue 19).  Each time it sends a 150 MB
body to ``POST /api/v1/commands`` with ``Content-Length`` and to ``POST /api/v1/auth/token``
chunked, and reads the server's peak resident memory (``VmHWM``) before and after.  Prints both
and the ratio of the growths.  Linux only (reads /proc).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.headend.test_body_limit import ATTACK, _offer, _rss_peak  # noqa: E402
from tests.services import free_port  # noqa: E402

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from headend.api.limits import BodyLimit
    from headend.app import create_app
    from headend.config import DatabaseSettings, Settings
    app = create_app(Settings(database=DatabaseSettings(url=sys.argv[1])), ingest=False)
    if sys.argv[3] == "without":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not BodyLimit]
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
    """
)


def measure(mode: str, workdir: Path) -> tuple[float, float, list[bytes]]:
    """Peak RSS (MiB) before and after the two 150 MB bodies, and the status lines."""
    port = free_port()
    env = {**os.environ, "TAIQU_HEADEND_SECRET": "b" * 40, "PYTHONPATH": str(ROOT)}
    url = f"sqlite:///{workdir / f'{mode}.db'}"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port), mode], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{mode}: the head-end did not start") from None
                time.sleep(0.1)
        _offer(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0, False)
        before = _rss_peak(proc.pid)
        stated = (
            b"POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % ATTACK
        )
        streamed = (
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        statuses = [
            _offer(port, head, ATTACK, chunked).split(b"\r\n")[0]
            for head, chunked in ((stated, False), (streamed, True))
        ]
        after = _rss_peak(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return before / 2**20, after / 2**20, statuses


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {mode: measure(mode, Path(tmp)) for mode in ("without", "with")}
    print(f"unauthenticated bodies of {ATTACK / 2**20:.0f} MiB (Content-Length, then chunked)")
    for mode, (before, after, statuses) in rows.items():
        shown = ", ".join(s.decode(errors="replace") for s in statuses)
        print(
            f"  {mode:>7} limit: peak RSS {before:6.1f} → {after:6.1f} MiB "
            f"(+{after - before:.1f})  [{shown}]"
        )
    grew = {m: max(a - b, 0.1) for m, (b, a, _) in rows.items()}
    print(f"  growth with the limit / without: {grew['with'] / grew['without']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
