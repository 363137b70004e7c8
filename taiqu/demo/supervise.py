"""The demo's process supervisor: start, restart on failure (as systemd would), stop in order.

Each service is a child process with its output appended to ``<workdir>/<name>.log``.  The policy
is systemd's ``Restart=on-failure`` with ``RestartSec`` (``delay_s``) and the start limit
(``StartLimitBurst`` restarts within ``StartLimitIntervalSec``: ``burst`` within ``interval_s``):
a process that exits with a non-zero status or is killed by a signal is restarted after the delay
and the restart is logged (to the caller's ``say`` and to ``<workdir>/supervisor.log``); one that
fails more often than the limit allows is given up, like a unit in ``start-limit-hit``.  A clean
exit (status 0) is not restarted: the service is "stopped", which the caller also sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class RestartPolicy:
    """systemd's ``Restart=on-failure``, ``RestartSec`` and start limit (burst in interval)."""

    delay_s: float = 1.0
    burst: int = 5
    interval_s: float = 120.0


@dataclass
class Service:
    """One supervised process and its restart bookkeeping."""

    name: str
    args: list[str]
    env: dict[str, str]
    restart_args: list[str]
    proc: subprocess.Popen[bytes]
    restarts: deque[float] = field(default_factory=deque)  # monotonic times of restarts
    died_at: float | None = None
    done: str | None = None  # why it is no longer supervised (gave up / exited cleanly)


@dataclass
class Supervisor:
    """Starts services, restarts those that fail (``poll``), stops them last-started first."""

    workdir: Path
    policy: RestartPolicy = RestartPolicy()
    say: Callable[[str], None] = print
    services: list[Service] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            return subprocess.Popen(
                args,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
            )
        finally:
            log.close()

    def start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        *,
        restart_args: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` as service ``name`` (``restart_args``: what a restart runs instead)."""
        proc = self._spawn(name, args, env or {})
        self.services.append(Service(name, args, env or {}, restart_args or args, proc))
        return proc

    def record(self, message: str) -> None:
        """Tell the caller and append to ``supervisor.log`` with the wall time."""
        self.say(message)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with open(self.workdir / "supervisor.log", "a") as out:
            out.write(f"{stamp} {message}\n")

    def poll(self, now: float | None = None) -> list[str]:
        """Restart failed services that are due; the names of those no longer supervised."""
        now = time.monotonic() if now is None else now
        for svc in self.services:
            if svc.done is not None or svc.proc.poll() is None:
                continue
            code = svc.proc.returncode
            if code == 0:
                svc.done = "exited"
                self.record(f"{svc.name} exited cleanly (status 0): not restarted")
                continue
            if svc.died_at is None:
                svc.died_at = now
                how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
                self.record(
                    f"{svc.name} {how}; restarting in {self.policy.delay_s:g} s "
                    f"(see {svc.name}.log)"
                )
            if now - svc.died_at < self.policy.delay_s:
                continue
            while svc.restarts and now - svc.restarts[0] > self.policy.interval_s:
                svc.restarts.popleft()
            if len(svc.restarts) >= self.policy.burst:
                svc.done = "start-limit-hit"
                self.record(
                    f"{svc.name} failed {len(svc.restarts) + 1} times within "
                    f"{self.policy.interval_s:g} s: giving up (start limit hit)"
                )
                continue
            svc.restarts.append(now)
            svc.died_at = None
            svc.proc = self._spawn(svc.name, svc.restart_args, svc.env)
            self.record(f"{svc.name} restarted (pid {svc.proc.pid})")
        return [s.name for s in self.services if s.done is not None]

    def proc(self, name: str) -> subprocess.Popen[bytes]:
        """The current process of service ``name``."""
        return next(s.proc for s in self.services if s.name == name)

    def stop(self) -> None:
        """SIGTERM each process, last started first, waiting for each (then SIGKILL)."""
        for svc in reversed(self.services):
            proc = svc.proc
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
