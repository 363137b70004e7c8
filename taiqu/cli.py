"""The ``taiqu`` command: a thin dispatcher that imports each package's sub-commands lazily.

``taiqu dlt645 decode …`` must start fast and the gateway on a Pi must never pay for importing
FastAPI, so nothing below is imported until its command is named.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command -> ("module:attribute" of a typer.Typer app, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "dlt645": (
        "protocols.dlt645.cli:app",
        "Decode and encode DL/T 645 frames (field engineer's tool).",
    ),
    "dlt698": (
        "protocols.dlt698.cli:app",
        "Decode and encode DL/T 698.45 frames (field engineer's tool).",
    ),
    "modbus": ("protocols.modbus.cli:app", "Inspect Modbus meter register maps."),
    "sim": ("simulators.cli:app", "Run simulated meters and RS-485 buses."),
    "gateway": ("gateway.cli:app", "Run the concentrator daemon."),
    "field": (
        "gateway.field.cli:app",
        "Commission a bus: read, search, probe and monitor meters (field engineer's tool).",
    ),
    "headend": ("headend.cli:app", "Run the head-end service and its admin tasks."),
    "demo": ("taiqu.demo:app", "Run the embedded demo: fleet + gateways + broker + head-end."),
    "clock": ("taiqu.clock_cli:app", "Show the time of a clock setting."),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["Usage: taiqu COMMAND [ARGS]...", "", "Commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'taiqu COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Dispatch to the named sub-command, importing only its module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        raise SystemExit(0)
    if args[0] == "--version":
        from taiqu import __version__

        print(f"taiqu {__version__}")
        raise SystemExit(0)
    name = args[0]
    if name not in COMMANDS:
        print(f"taiqu: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)
    target, _ = COMMANDS[name]
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional extra (e.g. the head-end) is not installed
        print(f"taiqu {name}: not available in this installation ({exc})", file=sys.stderr)
        raise SystemExit(2) from None
    app = getattr(module, attr)
    app(args[1:], prog_name=f"taiqu {name}")


if __name__ == "__main__":
    main()
