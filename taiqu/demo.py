"""``taiqu demo`` / ``make demo``: the whole stack on one machine, no root, no system service.

A simulated fleet (several transformer areas, DL/T 645 and Modbus meters, an area total meter
each, a bypass and a cover-open scenario) on an accelerated clock, one gateway per area, an MQTT
broker (mosquitto when installed, otherwise an embedded Python broker) and the head-end on
SQLite.  Every part runs as its own process through the ``taiqu`` command, exactly as deployed;
this module writes their configuration files, supervises them, and talks to them only through
the ``taiqu`` CLI and HTTP (it imports none of gateway/headend/simulators):

1. broker; 2. ``taiqu sim serve`` (writes each area's gateway.toml); 3. the head-end
(``migrate``, ``create-user`` for the admin, ``serve`` on the same clock setting); 4. the fleet's
archive — gateways, areas, meters with each area's total meter, read from the simulators'
control interface — imported through the head-end's API (gateways, areas, CSV meter import),
plus an operator and a supervisor; 5. one ``taiqu gateway run`` per area, which receives its
archive from the head-end.  Commands are signed: the head-end's key is created with
``keys-init --valid-from`` the simulated clock's start and its trust file (``keys-export``) is
installed in every gateway's ``[signatures]``, which requires signatures.  ``--for SECONDS``
stops everything cleanly (exit 0).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
ZONE = "Asia/Shanghai"
DEMO_USER = "demo"
# The demo's other logins: name → role (the admin above creates them through the API).
STAFF = {"operator": "operator", "supervisor": "supervisor"}


class DemoError(RuntimeError):
    """A part of the demo did not come up (the message says which and where its log is)."""


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
        """SIGTERM each process, last started first, waiting for each (then SIGKILL)."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
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


def headend_toml(
    db: Path,
    mqtt_port: int,
    api_port: int,
    clock_start: datetime,
    factor: float,
    anchor: datetime,
    keys_dir: Path,
) -> str:
    """The head-end's configuration: SQLite, the demo broker, the API port, the fleet's clock.

    Commands are signed with a key in ``keys_dir`` (``keys-init --valid-from`` the clock's start:
    the demo's clock starts in the past, so the first daily freeze comes soon).
    """
    return (
        f"clock = {{ start = {clock_start.isoformat()}, factor = {factor:g}, "
        f"anchor = {anchor.isoformat()} }}\n\n"
        f'[database]\nurl = "sqlite:///{db}"\nsqlite_synchronous = "NORMAL"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nclient_id = "taiqu-headend-demo"\n\n'
        "[ingest]\noutbox_interval = 0.2\n\n"
        f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n\n'
        f'[security]\nkeys_dir = "{keys_dir}"\nsign_commands = true\n\n'
        f'[guards]\ntimezone = "{ZONE}"\n\n'
        f"[commands]\ndispatch_interval = {min(60.0, factor):g}\n\n"
        f'[analytics]\nzone = "{ZONE}"\n'
    )


@dataclass
class Api:
    """A tiny JSON client of the head-end's API (stdlib only: the demo imports no head-end)."""

    base: str
    token: str = ""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        form: dict[str, str] | None = None,
        csv_text: str | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif csv_text is not None:
            data = csv_text.encode()
            headers["Content-Type"] = "text/csv"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise DemoError(f"head-end {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DemoError(f"head-end {method} {path}: {exc}") from None

    def login(self, name: str, password: str) -> None:
        reply = self.call(
            "POST", "/api/v1/auth/token", form={"username": name, "password": password}
        )
        self.token = reply["access_token"]


def fleet_meters(control_port: int) -> list[dict[str, Any]]:
    """Every simulated meter (id, address, protocol, model, role, bus, area) from the control."""
    url = f"http://127.0.0.1:{control_port}/api/meters"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.loads(response.read())
    if not body.get("ok"):
        raise DemoError(f"the simulators' control answered {body.get('error')}")
    return list(body["result"])


def meters_csv(meters: list[dict[str, Any]]) -> str:
    """The head-end's archive CSV of the simulated meters (customers on tariff ``res``)."""
    buf = io.StringIO()
    columns = ["id", "area", "bus", "protocol", "address", "model", "role", "tariff_category"]
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for m in meters:
        writer.writerow(
            {
                "id": m["id"],
                "area": m["area"],
                "bus": m["bus"],
                "protocol": m["protocol"],
                "address": m["address"],
                "model": m["model"] or "",
                "role": m["role"],
                "tariff_category": "res" if m["role"] == "customer" else "",
            }
        )
    return buf.getvalue()


def import_archive(
    api: Api, meters: list[dict[str, Any]], gateways: dict[str, str], since: datetime
) -> int:
    """Gateways, areas and meters into the head-end (in force from ``since``); returns meters."""
    at = {"valid_from": since.isoformat()}
    for area, gateway in sorted(gateways.items()):
        api.call("POST", "/api/v1/gateways", {"id": gateway, "name": f"demo {area}"}, query=at)
        api.call("POST", "/api/v1/areas", {"id": area, "name": area, "gateway": gateway}, query=at)
    report = api.call("POST", "/api/v1/meters/import", csv_text=meters_csv(meters), query=at)
    return len(report["created"])


def trust_signed_commands(config: Path, trust_file: Path) -> None:
    """Make a simulator-written gateway.toml require commands signed by the keys in ``trust_file``.

    Replaces its ``[signatures]`` table (the simulators write ``required = false``, with a comment
    above it) by one naming the trust file, and checks the result parses as intended.
    """
    lines = config.read_text().splitlines()
    kept: list[str] = []
    skipping = False
    for line in lines:
        header = line.strip().startswith("[")
        if line.strip() == "[signatures]":
            while kept and kept[-1].lstrip().startswith("#"):
                kept.pop()  # the comment that explained the opt-out
            skipping = True
            continue
        if skipping and not header:
            continue
        skipping = False
        kept.append(line)
    kept += [
        "",
        "# Commands from the demo head-end are signed (taiqu headend keys-export).",
        "[signatures]",
        f"trust_file = {json.dumps(str(trust_file))}",
        "required = true",
    ]
    config.write_text("\n".join(kept) + "\n")
    got = tomllib.loads(config.read_text()).get("signatures")
    if got != {"trust_file": str(trust_file), "required": True}:
        raise DemoError(f"{config}: could not install the trust file ([signatures] is {got})")


def gateway_ids(configs: list[Path]) -> dict[str, str]:
    """Area → gateway id, from the gateway.toml files the simulators wrote."""
    out = {}
    for cfg in configs:
        for line in cfg.read_text().splitlines():
            if line.startswith("gateway_id"):
                out[cfg.stem.removeprefix("gateway-")] = json.loads(line.split("=", 1)[1])
    return out


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
        if len(configs) < areas:
            raise DemoError(f"the simulators wrote {len(configs)} of {areas} gateway configs")
        started.append(f"{areas} areas simulated; control on 127.0.0.1:{control_port}")
        console.print(f"[green]✓[/] {started[-1]}")

        logins = {DEMO_USER: secrets.token_urlsafe(9)}
        logins |= {name: secrets.token_urlsafe(9) for name in STAFF}
        with console.status("starting the head-end …"):
            cfg = workdir / "headend.toml"
            cfg.write_text(
                headend_toml(
                    workdir / "headend.db",
                    mqtt_port,
                    api_port,
                    start,
                    factor,
                    now,
                    workdir / "keys",
                )
            )
            env = {"TAIQU_HEADEND_SECRET": secrets.token_hex(32)}
            trust = workdir / "headend-keys.json"
            for step in (
                ["migrate"],
                ["create-user", DEMO_USER, "--role", "admin", "--password-stdin"],
                ["keys-init", "--valid-from", start.isoformat()],
                ["keys-export", str(trust)],
            ):
                done = subprocess.run(
                    taiqu("headend", *step, "--config", str(cfg)),
                    input=logins[DEMO_USER].encode(),
                    cwd=workdir,
                    capture_output=True,
                    env={**os.environ, **env},
                )
                if done.returncode != 0:
                    why = done.stderr.decode(errors="replace").strip()[-300:]
                    raise DemoError(f"taiqu headend {step[0]} failed: {why}")
            headend = sup.start("headend", taiqu("headend", "serve", "--config", str(cfg)), env)
            wait_port(api_port, headend, 60, "the head-end")
        url = f"http://127.0.0.1:{api_port}/"
        started.append(f"head-end on {url}")
        console.print(f"[green]✓[/] {started[-1]} (API docs: {url}docs)")

        with console.status("importing the fleet's archive into the head-end …"):
            api = Api(url.rstrip("/"))
            api.login(DEMO_USER, logins[DEMO_USER])
            gateways = gateway_ids(configs)
            count = import_archive(api, fleet_meters(control_port), gateways, start)
            for name, role in STAFF.items():
                api.call(
                    "POST", "/api/v1/users", {"name": name, "role": role, "password": logins[name]}
                )
        console.print(
            f"[green]✓[/] archive imported: {len(gateways)} gateways, {len(gateways)} areas "
            f"(each with its area total meter), {count} meters"
        )

        with console.status("starting the gateways …"):
            for cfg_path in configs:
                trust_signed_commands(cfg_path, trust)
                sup.start(cfg_path.stem, taiqu("gateway", "run", "--config", str(cfg_path)))
        started.append(f"{len(configs)} gateways ({', '.join(sorted(gateways.values()))})")
        console.print(f"[green]✓[/] {started[-1]}; first readings within a minute")

        console.print(f"\n    console: [bold]{url}[/]   (API docs: {url}docs)")
        for name, password in logins.items():
            role = STAFF.get(name, "admin")
            console.print(f"    login  {name:<11} / [bold]{password}[/]   ({role})")
        console.print(f"    logs, configs and data in {workdir} (headend.log, gw-*.log, …)")
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
    except (RuntimeError, OSError) as exc:
        console.print(f"[red]✗[/] {exc}; logs in {workdir}")
        raise typer.Exit(1) from None
    finally:
        with console.status("stopping …"):
            sup.stop()
        console.print("stopped cleanly.")
