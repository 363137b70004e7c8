"""``taiqu demo`` / ``make demo``: the whole stack on one machine, no root, no system service.

A simulated fleet (several transformer areas, DL/T 645 and Modbus meters, an area total meter
each, a bypass and a cover-open scenario) on an accelerated clock, one gateway per area, an MQTT
broker (mosquitto when installed, otherwise an embedded Python broker) and the head-end on
SQLite.  Every part runs as its own process through the ``taiqu`` command, exactly as deployed;
this module only writes their configuration files and supervises them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
ZONE = "Asia/Shanghai"
DEMO_USER = "demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Wait until ``port`` accepts connections, failing early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} (see its log)")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


@dataclass
class Supervisor:
    """Starts processes with their output in log files and stops them in reverse order."""

    workdir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            args,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def check(self) -> list[str]:
        """Names of processes that have died."""
        return [name for name, p in self.procs if p.poll() is not None]

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def taiqu(*args: str) -> list[str]:
    return [sys.executable, "-m", "taiqu.cli", *args]


def fleet_toml(
    areas: int, meters: int, clock_start: datetime, factor: float, anchor: datetime
) -> str:
    """The demo fleet: per area one DL/T 645-2007 bus with the area total meter, one Modbus bus."""
    lines = [
        f"clock = {{ start = {clock_start.isoformat()}, factor = {factor:g}, "
        f"anchor = {anchor.isoformat()} }}",
        f'zone = "{ZONE}"',
    ]
    for a in range(1, areas + 1):
        area, gw = f"area{a}", f"gw-{a:04d}"
        lines += [
            "",
            "[[areas]]",
            f'name = "{area}"',
            f'gateway_id = "{gw}"',
            f"technical_loss = {0.03 + 0.01 * a:.2f}",
        ]
        lines += [
            "",
            "[[buses]]",
            f'name = "{area}-rs485-1"',
            f'area = "{area}"',
            f'listen = "tcp://127.0.0.1:{free_port()}"',
            "baud = 2400",
            "pace = false",
        ]
        lines += [
            "",
            "[[buses]]",
            f'name = "{area}-rs485-2"',
            f'area = "{area}"',
            f'listen = "tcp://127.0.0.1:{free_port()}"',
            "baud = 9600",
            'parity = "N"',
            "pace = false",
        ]
        base = f"2026{a:02d}00"
        lines += [
            "",
            "[[meters]]",
            f'bus = "{area}-rs485-1"',
            f'address = "{base}9999"',
            'role = "area_total"',
            'profile = "flat"',
            f"seed = {a * 100}",
        ]
        dlt = max(1, meters - 2)
        scenario = ""
        if a == 2:
            scenario = 'scenarios = [{ kind = "bypass", after_s = 120, fraction = 0.5 }]'
        lines += [
            "",
            "[[meters]]",
            f'bus = "{area}-rs485-1"',
            'protocol = "dlt645-2007"',
            f'address = "{base}0001"',
            f"count = {dlt}",
            'profile = "residential"',
            f"seed = {a * 1000}",
            scenario,
        ]
        if a == 3:
            lines += [
                "",
                "[[meters]]",
                f'bus = "{area}-rs485-1"',
                f'address = "{base}0500"',
                'profile = "commercial"',
                f"seed = {a * 1000 + 500}",
                'scenarios = [{ kind = "meter_cover_open", after_s = 90, duration_s = 300 }]',
            ]
        lines += [
            "",
            "[[meters]]",
            f'bus = "{area}-rs485-2"',
            'protocol = "modbus"',
            'model = "DDSU666"',
            'address = "1"',
            "count = 2",
            'profile = "commercial"',
            f"seed = {a * 1000 + 900}",
        ]
    return "\n".join(lines) + "\n"


def start_broker(sup: Supervisor, port: int) -> str:
    """mosquitto with persistence when installed, else the embedded amqtt broker."""
    binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary:
        conf = sup.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {sup.workdir}/\nmax_queued_messages 100000\n"
        )
        proc = sup.start("broker", [binary, "-c", str(conf)])
        kind = "mosquitto"
    else:
        proc = sup.start("broker", [sys.executable, "-m", "taiqu.broker", "--port", str(port)])
        kind = "embedded amqtt broker"
    wait_port(port, proc, 15, kind)
    return kind


def headend_toml(db: Path, mqtt_port: int, api_port: int) -> str:
    """The head-end's configuration: SQLite, the demo broker, the API port."""
    return (
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nclient_id = "taiqu-headend-demo"\n\n'
        f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n'
    )


@app.callback(invoke_without_command=True)
def demo(
    for_seconds: float | None = typer.Option(None, "--for", help="Stop after this many seconds."),
    areas: int = typer.Option(3, min=1, max=20, help="Transformer areas (one gateway each)."),
    meters: int = typer.Option(10, min=3, max=200, help="Customer meters per area."),
    factor: float = typer.Option(60.0, min=1, help="Clock acceleration (60: an hour a minute)."),
    port: int = typer.Option(8080, help="Head-end HTTP port (0: any free port)."),
    workdir: Path = typer.Option(Path(".run/demo"), help="Where configs, logs and data go."),
) -> None:
    """Run the embedded demo until Ctrl-C (or for --for SECONDS)."""
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    sup = Supervisor(workdir)
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mqtt_port, control_port = free_port(), free_port()
    api_port = port or free_port()
    now = datetime.now(UTC).replace(microsecond=0)
    # Start the simulated day shortly before local midnight so the first daily freeze comes soon.
    local = now.astimezone(ZoneInfo(ZONE))
    start = (local.replace(hour=23, minute=30, second=0) - timedelta(days=1)).astimezone(
        ZoneInfo(ZONE)
    )
    started: list[str] = []
    try:
        with console.status("starting the broker …"):
            kind = start_broker(sup, mqtt_port)
        started.append(f"MQTT broker ({kind}) on 127.0.0.1:{mqtt_port}")
        console.print(f"[green]✓[/] {started[-1]}")

        fleet = workdir / "fleet.toml"
        fleet.write_text(fleet_toml(areas, meters, start, factor, now))
        with console.status("starting the simulated fleet …"):
            sim = sup.start(
                "simulators",
                taiqu(
                    "sim",
                    "serve",
                    "--config",
                    str(fleet),
                    "--control",
                    f"127.0.0.1:{control_port}",
                    "--write-gateway-config",
                    str(workdir / "gateway-{area}.toml"),
                    "--broker",
                    f"127.0.0.1:{mqtt_port}",
                ),
            )
            wait_port(control_port, sim, 30, "the simulators")
            deadline = time.monotonic() + 20
            while len(list(workdir.glob("gateway-*.toml"))) < areas and time.monotonic() < deadline:
                time.sleep(0.1)
        configs = sorted(workdir.glob("gateway-*.toml"))
        started.append(f"{areas} areas simulated; control on 127.0.0.1:{control_port}")
        console.print(f"[green]✓[/] {started[-1]}")

        with console.status("starting the gateways …"):
            for cfg in configs:
                sup.start(cfg.stem, taiqu("gateway", "run", "--config", str(cfg)))
        started.append(f"{len(configs)} gateways ({', '.join(c.stem for c in configs)})")
        console.print(f"[green]✓[/] {started[-1]}")

        password = secrets.token_urlsafe(9)
        with console.status("starting the head-end …"):
            cfg = workdir / "headend.toml"
            cfg.write_text(headend_toml(workdir / "headend.db", mqtt_port, api_port))
            env = {"TAIQU_HEADEND_SECRET": secrets.token_hex(32)}
            subprocess.run(
                taiqu("headend", "migrate", "--config", str(cfg)),
                cwd=workdir,
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            user = subprocess.run(
                taiqu(
                    "headend",
                    "create-user",
                    DEMO_USER,
                    "--role",
                    "admin",
                    "--config",
                    str(cfg),
                    "--password-stdin",
                ),
                input=password.encode(),
                cwd=workdir,
                capture_output=True,
                env={**os.environ, **env},
            )
            headend = sup.start("headend", taiqu("headend", "serve", "--config", str(cfg)), env)
            wait_port(api_port, headend, 60, "the head-end")
        url = f"http://127.0.0.1:{api_port}/"
        console.print(f"[green]✓[/] head-end on {url} (API docs: {url}docs)")
        if user.returncode == 0:
            console.print(f"    demo login: [bold]{DEMO_USER}[/] / [bold]{password}[/]")
        else:
            console.print("    [yellow]no demo user[/]: " + user.stderr.decode().strip()[-200:])
        console.print(f"    logs, configs and data in {workdir}")
        console.print(
            "    Ctrl-C stops everything."
            if for_seconds is None
            else f"    stopping after {for_seconds:g} s."
        )
        ends = time.monotonic() + (for_seconds if for_seconds is not None else float("inf"))
        while not stop["now"] and time.monotonic() < ends:
            dead = sup.check()
            if dead:
                names = ", ".join(dead)
                console.print(f"[red]✗[/] {names} stopped unexpectedly: see {workdir}/*.log")
                raise typer.Exit(1)
            time.sleep(0.5)
    except RuntimeError as exc:
        console.print(f"[red]✗[/] {exc}; logs in {workdir}")
        raise typer.Exit(1) from None
    finally:
        with console.status("stopping …"):
            sup.stop()
        console.print("stopped cleanly.")
