"""``taiqu field monitor``: passive — every frame on the bus, both directions, decoded."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import IO

import typer

from gateway.field.monitor import NOISE, REQ, Seen, Splitter
from gateway.field.port import OK, Port
from gateway.field.ui import BaudOpt, JsonOpt, ParityOpt, PortArg, errors, line, out

SILENCE = 0.02  # seconds without a byte that end what is buffered (a frame gap, roughly)


def monitor(
    port: str = PortArg,
    baud: int | None = BaudOpt,
    parity: str | None = ParityOpt,
    raw: bool = typer.Option(False, "--raw", help="Hex only, no decoding."),
    capture: Path | None = typer.Option(None, "--capture", help="Also write a capture file."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after N seconds."),
    as_json: bool = JsonOpt,
) -> None:
    """Print every frame heard on the bus (the port only listens: it sends nothing)."""
    splitter = Splitter()
    until = None if duration is None else time.monotonic() + duration
    file: IO[str] | None = None
    try:
        with errors(), Port(port, line(baud or 2400, parity or "E")) as p:
            if capture is not None:
                file = capture.open("a", encoding="utf-8")
                file.write(f"# taiqu field monitor {port} {p.line}\n")
            last = time.monotonic()
            for ts, chunk in p.listen(until):
                now = time.monotonic()
                if chunk:
                    seen = splitter.feed(ts, chunk)
                    last = now
                elif now - last > SILENCE:
                    seen = splitter.flush(ts)
                else:
                    continue
                for item in seen:
                    _show(item, raw, as_json, file)
            for item in splitter.flush(time.time()):
                _show(item, raw, as_json, file)
    except KeyboardInterrupt:
        for item in splitter.flush(time.time()):
            _show(item, raw, as_json, file)
    finally:
        if file is not None:
            file.close()
    raise typer.Exit(OK)


def _show(item: Seen, raw: bool, as_json: bool, file: IO[str] | None) -> None:
    if file is not None:
        file.write(item.capture_line() + "\n")
        file.flush()
    when = datetime.fromtimestamp(item.ts).strftime("%H:%M:%S.%f")[:-3]
    if as_json:
        record = {
            "time": item.ts,
            "direction": item.direction,
            "protocol": item.protocol,
            "hex": item.raw.hex(),
            "decoded": None if raw else item.decoded,
        }
        out.print(json.dumps(record, ensure_ascii=False, default=str), markup=False)
        return
    arrow = {REQ: "→", NOISE: "~"}.get(item.direction, "←")
    style = "yellow" if item.direction == NOISE else ""
    text = f"{when} {arrow} {item.direction:<5} {item.protocol or '?':<6} {item.raw.hex(' ')}"
    out.print(text, style=style, markup=False)
    if not raw and item.decoded:
        out.print(f"{'':13}{_summary(item)}", markup=False)


def _summary(item: Seen) -> str:
    d = item.decoded or {}
    if item.protocol != "dlt645":
        return " ".join(f"{k}={v}" for k, v in d.items())
    parts = [str(d.get("message", "")), str(d.get("address", ""))]
    ident = d.get("identifier") or {}
    if ident:
        parts.append(f"{ident.get('di')} {ident.get('name') or ''}".strip())
    for key, value in (ident.get("values") or {}).items():
        unit = value.get("unit", "") if isinstance(value, dict) else ""
        shown = value.get("value") if isinstance(value, dict) else value
        parts.append(f"{key}={shown}{(' ' + unit) if unit else ''}")
    for key in ("command", "error"):
        if key in d:
            parts.append(f"{key}={d[key]}")
    return " ".join(p for p in parts if p)
