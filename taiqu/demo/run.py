"""``taiqu demo``: the command (see the package docstring for what runs and in which order)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from taiqu.demo.client import (
    Api,
    DemoError,
    fleet_meters,
    gateway_ids,
    import_archive,
)
from taiqu.demo.fleet import (
    BACKFILL_DAYS,
    clock_start,
    fleet_toml,
    free_port,
    headend_toml,
    history_start,
    taiqu,
    wait_port,
)
from taiqu.demo.history import History
from taiqu.demo.prepay import TARIFFS, Sink, Story, open_accounts
from taiqu.demo.security import (
    enrol,
    install_bundle,
    mosquitto_binary,
    prepare_broker_dir,
    run_headend,
    start_broker,
)
from taiqu.demo.supervise import Supervisor

app = typer.Typer(add_completion=False, help="Run the embedded demo (see docs and README).")
console = Console()
DEMO_USER = "demo"
# The demo's other logins: name → role (the admin above creates them through the API).
STAFF = {"operator": "operator", "supervisor": "supervisor"}


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
    sup = Supervisor(workdir, say=lambda m: console.print(f"[yellow]↻[/] {m}"))
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mqtt_port, control_port = free_port(), free_port()
    api_port = port or free_port()
    now = datetime.now(UTC).replace(microsecond=0)
    start = clock_start(now)  # 07:40 on a working day: see taiqu.demo.fleet
    sink = Sink(workdir / "notifications.jsonl")
    started: list[str] = []
    try:
        esam_key = workdir / "esam-lab.key"  # laboratory key: head-end and ESAM meters share it
        fleet = workdir / "fleet.toml"
        fleet.write_text(fleet_toml(areas, meters, start, factor, now, esam_key))
        gateways = {a["name"]: a["gateway_id"] for a in tomllib.loads(fleet.read_text())["areas"]}
        logins = {DEMO_USER: secrets.token_urlsafe(9)}
        logins |= {name: secrets.token_urlsafe(9) for name in STAFF}
        tls = mosquitto_binary() is not None  # else the anonymous amqtt fallback
        broker_dir = workdir / "broker"
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
                esam_key,
                broker_dir if tls else None,
            )
        )
        env = {"TAIQU_HEADEND_SECRET": secrets.token_hex(32)}
        since = history_start(start)
        prepare_broker_dir(broker_dir)

        # the head-end's database and the enrolment run while the simulators start; a gateway
        # is enrolled into a migrated database (enrolment may register its keys there)
        with ThreadPoolExecutor(4) as pool:
            migrated = pool.submit(run_headend, ["migrate"], cfg, workdir, env)

            def admin() -> None:
                migrated.result()
                step = ["create-user", DEMO_USER, "--role", "admin", "--password-stdin"]
                run_headend(step, cfg, workdir, env, logins[DEMO_USER].encode())

            def identities() -> None:
                enrol(
                    cfg,
                    gateways.values(),
                    # valid from the back-filled week: archive versions from then are signed too
                    valid_from=since.isoformat(),
                    tls=tls,
                    password_file=workdir / "mqtt-password",
                    cwd=workdir,
                    env=env,
                    before_gateways=migrated.result,
                )

            lab_key = pool.submit(run_headend, ["esam-lab-key", str(esam_key)], None, workdir, {})
            admin_done, enrolled = pool.submit(admin), pool.submit(identities)
            lab_key.result()  # the simulated ESAM meters read it at start
            with console.status("starting the simulated fleet …"):
                serve = taiqu("sim", "serve", "--config", str(fleet))
                serve += ["--control", f"127.0.0.1:{control_port}"]
                configs_out = ["--write-gateway-config", str(workdir / "gateway-{area}.toml")]
                configs_out += ["--broker", f"127.0.0.1:{mqtt_port}"]
                # a restart must not overwrite the gateway configs (they hold the bundles)
                sim = sup.start("simulators", serve + configs_out, restart_args=serve)
                wait_port(control_port, sim, 30, "the simulators")
                deadline = time.monotonic() + 20
                while (
                    len(list(workdir.glob("gateway-*.toml"))) < areas
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.1)
            configs = sorted(workdir.glob("gateway-*.toml"))
            if len(configs) < areas:
                raise DemoError(f"the simulators wrote {len(configs)} of {areas} gateway configs")
            started.append(f"{areas} areas simulated; control on 127.0.0.1:{control_port}")
            console.print(f"[green]✓[/] {started[-1]}")
            with console.status("setting up the head-end and enrolling the gateways …"):
                migrated.result(), admin_done.result(), enrolled.result()
        if gateway_ids(configs) != gateways:
            raise DemoError(f"the simulators wrote configs for {gateway_ids(configs)}")
        for cfg_path in configs:
            gateway = gateways[cfg_path.stem.removeprefix("gateway-")]
            install_bundle(cfg_path, workdir / "enrol" / gateway, broker=tls)
        console.print(
            f"[green]✓[/] {len(gateways)} gateways enrolled (taiqu headend enrol-gateway): each "
            f"its own broker identity and bundle in {workdir / 'enrol'}; the head-end its own"
        )
        with console.status("starting the broker …"):
            kind = start_broker(sup, mqtt_port, broker_dir if tls else None)
        started.append(f"MQTT broker ({kind}) on 127.0.0.1:{mqtt_port}")
        console.print(f"[green]✓[/] {started[-1]}")
        with console.status("starting the head-end …"):
            headend = sup.start("headend", taiqu("headend", "serve", "--config", str(cfg)), env)
            wait_port(api_port, headend, 60, "the head-end")
        url = f"http://127.0.0.1:{api_port}/"
        started.append(f"head-end on {url}")
        console.print(f"[green]✓[/] {started[-1]} (API docs: {url}docs)")

        with console.status("importing the fleet's archive into the head-end …"):
            api = Api(url.rstrip("/"))
            api.login(DEMO_USER, logins[DEMO_USER])
            # in force from the start of the back-filled history, so its days count
            fleet_list = fleet_meters(control_port)
            count = import_archive(api, fleet_list, gateways, since, start)
            for name, role in STAFF.items():
                api.call(
                    "POST", "/api/v1/users", {"name": name, "role": role, "password": logins[name]}
                )
        console.print(
            f"[green]✓[/] archive imported: {len(gateways)} gateways, {len(gateways)} areas "
            f"(each with its area total meter), {count} meters, valid from {since:%Y-%m-%d}"
        )
        esams = [m["id"] for m in fleet_list if m.get("esam")]
        console.print(
            f"[green]✓[/] ESAM (cost-control) meters {', '.join(esams)}: relay control through "
            "the secured flow, sealed by the laboratory encryption service (NOT FOR PRODUCTION)"
        )
        with console.status("opening prepaid accounts …"):
            accounts = open_accounts(api, fleet_list, start, sink)
        on = Counter(accounts.tariffs.values())
        first = {t: min(a for a, at in accounts.tariffs.items() if at == t) for t in on}
        kinds = ", ".join(
            f"{n} on {tariff} ({TARIFFS[tariff]['kind']}, e.g. {first[tariff]})"
            for tariff, n in on.items()
        )
        console.print(
            f"[green]✓[/] {len(accounts.areas)} prepaid accounts: {kinds}; "
            f"reminders to a local sink ({workdir / 'notifications.jsonl'}); "
            f"{accounts.story} runs out of credit within minutes"
        )
        counter = Api(api.base)  # the counter clerk takes the payment (operator role)
        counter.login("operator", logins["operator"])
        story = Story(counter, accounts.story, lambda m: console.print(f"[cyan]¥[/] {m}"))
        history = History(
            api,
            [m["id"] for m in fleet_list if m["protocol"].startswith("dlt645")],
            since,
            start.date() - timedelta(days=1),
            lambda m: console.print(f"[green]✓[/] {m}"),
        )

        with console.status("starting the gateways …"):
            for cfg_path in configs:
                sup.start(cfg_path.stem, taiqu("gateway", "run", "--config", str(cfg_path)))
        started.append(f"{len(configs)} gateways ({', '.join(sorted(gateways.values()))})")
        console.print(f"[green]✓[/] {started[-1]}; first readings within a minute")

        console.print(f"\n    console: [bold]{url}[/]   (API docs: {url}docs)")
        for name, password in logins.items():
            role = STAFF.get(name, "admin")
            console.print(f"    login  {name:<11} / [bold]{password}[/]   ({role})")
        console.print(f"    logs, configs and data in {workdir} (headend.log, gw-*.log, …)")
        console.print(
            f"    simulated clock starts {start:%a %Y-%m-%d %H:%M} ({factor:g}× real time); "
            f"the past {BACKFILL_DAYS} days are back-filled"
        )
        console.print(
            f"    look at: {url} (line loss, suspects), {url}notifications (reminders), "
            f"{url}docs#/prepayment (accounts); supervisor log {workdir / 'supervisor.log'}"
        )
        console.print(
            "    Ctrl-C stops everything."
            if for_seconds is None
            else f"    stopping after {for_seconds:g} s."
        )
        ends = time.monotonic() + (for_seconds if for_seconds is not None else float("inf"))
        next_look = 0.0
        while not stop["now"] and time.monotonic() < ends:
            gone = sup.poll()
            if gone:
                names = ", ".join(gone)
                console.print(f"[red]✗[/] {names} no longer running: see {workdir}/*.log")
                raise typer.Exit(1)
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + 2
                with contextlib.suppress(DemoError):  # e.g. the head-end is being restarted
                    story.step()
                    history.step()
            time.sleep(0.25)
    except (RuntimeError, OSError) as exc:
        console.print(f"[red]✗[/] {exc}; logs in {workdir}")
        raise typer.Exit(1) from None
    finally:
        with console.status("stopping …"):
            sup.stop()
            sink.close()
        console.print("stopped cleanly.")
