"""Private instances of the real services the integration tests use (mosquitto, PostgreSQL).

Each starts on a free loopback port in a temporary directory and is stopped at the end of the
session.  Nothing relies on a system service.  Missing binaries skip the tests that need them on a
developer machine, and fail them in CI (where ``make test`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Mosquitto", "free_port", "mosquitto", "postgres_url", "wait_for_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def _missing(what: str) -> None:
    message = f"{what} is not installed (make test installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _find(*candidates: str) -> str | None:
    for c in candidates:
        path = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if path:
            return path
    return None


@dataclass
class Mosquitto:
    """A private mosquitto broker with persistence; ``stop``/``start``/``kill`` simulate outages."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            f"{self.extra_config}"
        )

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        self.write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """A clean stop (the broker writes its persistence file)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """kill -9: whatever the broker had not persisted is gone."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.poll() is None)


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = _find("mosquitto", "/usr/sbin/mosquitto")
    if not binary:
        _missing("mosquitto")
    assert binary
    return binary


@pytest.fixture
def mosquitto(mosquitto_binary: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh private broker per test (tests stop and restart it freely)."""
    broker = Mosquitto(mosquitto_binary, tmp_path / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    yield broker
    broker.stop()


def _pg_bin() -> Path | None:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return roots[0].parent if roots else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans(bindir: Path, run_as: list[str]) -> None:
    """Stop and remove private instances whose test process is gone (killed by a timeout, ^C)."""
    for root in Path(tempfile.gettempdir()).glob("taiqu-pg-*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = 0
        try:
            fresh = time.time() - root.stat().st_mtime < 60
        except OSError:
            continue  # reaped by another session meanwhile
        if (owner and _alive(owner)) or (not owner and fresh):
            continue  # in use, or being created this minute
        if (root / "data" / "postmaster.pid").exists():
            subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m",
                            "immediate", "stop"], capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _postgres_instance() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        _missing("PostgreSQL")
    assert bindir
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the packaged postgres user
        run_as = ["runuser", "-u", "postgres", "--"]
    _reap_orphans(bindir, run_as)
    root = Path(tempfile.mkdtemp(prefix="taiqu-pg-"))
    (root / "owner.pid").write_text(str(os.getpid()))
    datadir, port = root / "data", free_port()
    if run_as:
        shutil.chown(root, "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}

    def run(*cmd: str) -> None:
        subprocess.run([*run_as, *cmd], check=True, capture_output=True, env=env, cwd=root)

    run(str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "taiqu", "-E", "UTF8")
    options = f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(root / "log"), "-w",
        "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "taiqu", "taiqu")
        yield f"postgresql+psycopg://taiqu@127.0.0.1:{port}/taiqu"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate",
                        "stop"], capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a private PostgreSQL instance (one per test session)."""
    with _postgres_instance() as url:
        yield url
