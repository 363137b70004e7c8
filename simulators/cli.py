"""``taiqu sim``: run simulated meters and RS-485 buses, and control them live.

- ``taiqu sim serve --meters 10 --protocol dlt645-2007 --listen tcp://127.0.0.1:7001``
- ``taiqu sim serve --config fleet.toml --write-gateway-config gateway.toml``
- ``taiqu sim serve --meters 4 --personality single-phase`` (``taiqu sim personalities`` lists them)
- ``taiqu sim ctl set_faults target=202611240001 drop=0.3 --url http://127.0.0.1:8765``
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer

from simulators.errors import ControlUnavailable, SimError

app = typer.Typer(
    help="Run simulated meters and RS-485 buses.", no_args_is_help=True, add_completion=False
)
DEFAULT_CONTROL = "127.0.0.1:8765"


def _fail(message: str) -> None:
    typer.echo(f"taiqu sim: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def serve(
    meters: int = typer.Option(10, help="Meters on a quick bus."),
    protocol: str = typer.Option(
        "dlt645-2007", help="dlt645-2007 | dlt645-1997 | dlt698 | modbus:MODEL (SDM120, SDM630, …)."
    ),
    listen: str = typer.Option("tcp://127.0.0.1:7001", help="tcp://HOST:PORT or pty."),
    baud: int = typer.Option(2400, help="Baud rate of the quick bus."),
    config: Path | None = typer.Option(None, help="A fleet TOML file (areas × buses × meters)."),
    control: str = typer.Option(
        DEFAULT_CONTROL, help="HOST:PORT of the JSON control interface on loopback ('' = off)."
    ),
    area_total: bool = typer.Option(False, help="Add an area total meter to the quick bus."),
    personality: str = typer.Option(
        "ordinary", help="Meter personality of the quick bus (see `taiqu sim personalities`)."
    ),
    write_gateway_config: Path | None = typer.Option(
        None, help="Write a matching gateway.toml (one per area)."
    ),
    broker: str = typer.Option("127.0.0.1:1883", help="MQTT broker HOST:PORT for that file."),
    tap: str = typer.Option(
        "", help="HOST:PORT of a listen-only copy of the quick bus's traffic (field monitor)."
    ),
) -> None:
    """Serve a quick bus or a fleet file until interrupted; prints meters and endpoints."""
    from simulators.config import load_config, quick_config

    if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:  # `kill -USR1` prints every
        with contextlib.suppress(ValueError, OSError):  # thread's stack (a stuck shutdown)
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    # Ctrl-C stops it even when started from a shell's background job, which starts commands
    # with SIGINT ignored (Python then keeps ignoring it and asyncio installs no handler)
    with contextlib.suppress(ValueError):  # not the main thread (run in-process)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        if config is not None:
            fleet_config = load_config(config)
            if control != DEFAULT_CONTROL or not fleet_config.control:
                fleet_config.control = control
        else:
            fleet_config = quick_config(
                meters, protocol, listen, baud, area_total=area_total, personality=personality
            )
            fleet_config.control = control
            if tap:
                bus = fleet_config.buses[0]
                try:
                    fleet_config.buses[0] = type(bus).model_validate(
                        {**bus.model_dump(), "tap": tap}
                    )
                except ValueError:  # pydantic's ValidationError
                    _fail(f"--tap {tap!r} must be HOST:PORT (port 0 = any free port)")
        asyncio.run(_serve(fleet_config, write_gateway_config, broker))
    except SimError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot open an endpoint: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass


async def _serve(config: Any, gateway_path: Path | None, broker: str) -> None:
    from simulators.fleet import start_fleet
    from simulators.gateway_config import write_gateway_configs

    async with start_fleet(config) as fleet:
        if config.control:
            url = await fleet.start_control(config.control)
            typer.echo(f"control  {url}   (taiqu sim ctl METHOD key=value … --url {url})")
        for name, endpoint in fleet.endpoints.items():
            bus = fleet.buses[name]
            typer.echo(f"bus {name}  {endpoint}  {bus.line}")
            if name in fleet.rfc2217:
                typer.echo(f"    rfc2217  {fleet.rfc2217[name]}   (a remote serial server)")
            if name in fleet.taps:
                typer.echo(f"    tap      {fleet.taps[name]}   (listen only: taiqu field monitor)")
        for row in fleet.control.meters():
            meter = fleet.meters[row["id"]]
            line = fleet.meter_line.get(row["id"]) or fleet.buses[row["bus"]].line
            typer.echo(
                f"  meter {row['id']:<16} {row['protocol']:<12} {row['model'] or '-':<8} "
                f"{row['role']:<10} bus {row['bus']}  area {row['area']}  "
                f"{meter.spec.personality.name} ({line})"
            )
        if gateway_path is not None:
            host, _, port = broker.rpartition(":")
            written = write_gateway_configs(
                fleet, gateway_path, broker_host=host or "127.0.0.1", broker_port=int(port or 1883)
            )
            for path in written:
                typer.echo(f"gateway config written: {path}")
        typer.echo("serving; Ctrl-C stops")
        await asyncio.Event().wait()


@app.command()
def personalities() -> None:
    """List the meter personalities (simulators/personalities/*.toml)."""
    from simulators.personalities import describe

    for row in describe():
        proto = row["protocol"] or "any"
        typer.echo(
            f"{row['name']:<22} {proto:<12} {row['line'] or 'bus line':<10} {row['description']}"
        )


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def call(url: str, method: str, args: dict[str, Any], timeout: float = 30.0) -> Any:
    """POST one control call; ``ControlError``-like failures come back as ``SimError``."""
    from simulators.errors import ControlError

    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/{method}",
        data=json.dumps(args).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            raise ControlError(f"control answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControlUnavailable(f"no simulator control at {url} ({exc})") from None
    if not body.get("ok"):
        raise ControlError(body.get("error", "request failed"))
    return body["result"]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ctl(
    method: str = typer.Argument(..., help="now, meters, set_faults, truth_meter, … (see docs)."),
    args: list[str] = typer.Argument(None, help="key=value arguments (values parsed as JSON)."),
    url: str = typer.Option(
        os.environ.get("TAIQU_SIM_CONTROL", f"http://{DEFAULT_CONTROL}"), help="Control URL."
    ),
) -> None:
    """Call the control interface of a running ``taiqu sim serve``."""
    parsed: dict[str, Any] = {}
    for item in args or []:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"argument {item!r} is not key=value")
        parsed[key] = _value(value)
    try:
        result = call(url, method, parsed)
    except SimError as exc:
        _fail(str(exc))
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
