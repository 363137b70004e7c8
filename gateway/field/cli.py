"""``taiqu field``: commissioning a bus — read, search, probe, monitor (docs/field.md).

Every command takes a PORT pyserial opens: ``/dev/ttyUSB0`` (better a ``/dev/serial/by-path``
name), ``socket://HOST:PORT`` (a serial server in raw TCP mode) or ``rfc2217://HOST:PORT``
(line settings reach the remote UART).  Exit codes: ``gateway.field.port``.
"""

from __future__ import annotations

import typer

from gateway.field.commands import monitor, probe, read, search

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Commissioning tools: read, search, probe and monitor a meter bus.",
)
app.command("read")(read.read)
app.command("search")(search.search)
app.command("probe")(probe.probe)
app.command("monitor")(monitor.monitor)
