"""What the protocol field tools share (``taiqu dlt645``, ``taiqu dlt698``, ``taiqu modbus``).

Bad input ends a tool with one line ``taiqu <tool>: <why>`` on stderr and exit status 2, never a
traceback.  Captures are hex with any separators; frames found in them print as JSON lines.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import typer

from protocols.stream import FrameStream

F = TypeVar("F")
_SEPARATORS = str.maketrans("", "", " \t\n\r:,-_")


@dataclass(frozen=True, slots=True)
class FieldTool:
    """One tool's voice: ``name`` prefixes its messages, ``protocol`` names what it looks for."""

    name: str
    protocol: str

    def apps(self) -> tuple[typer.Typer, typer.Typer]:
        """The tool's command group and its ``encode`` group (request frames to hex)."""
        app = typer.Typer(
            add_completion=False, no_args_is_help=True, help=f"{self.protocol} field tool."
        )
        encode_app = typer.Typer(no_args_is_help=True, help="Print the hex of a request frame.")
        app.add_typer(encode_app, name="encode")
        return app, encode_app

    def fail(self, message: str) -> NoReturn:
        """One line on stderr, exit status 2."""
        typer.echo(f"taiqu {self.name}: {message}", err=True)
        raise typer.Exit(2)

    def note(self, message: str) -> None:
        """One line on stderr; the tool goes on."""
        typer.echo(f"taiqu {self.name}: {message}", err=True)

    def hex(self, parts: list[str]) -> bytes:
        """Bytes from hex words (spaces, colons, dashes, ``0x`` prefixes allowed)."""
        text = "".join(parts).translate(_SEPARATORS).replace("0x", "").replace("0X", "")
        if not text:
            self.fail("no hex given")
        bad = next((c for c in text if c not in string.hexdigits), None)
        if bad is not None:
            self.fail(f"{bad!r} is not a hex digit")
        if len(text) % 2:
            self.fail(f"odd number of hex digits ({len(text)})")
        return bytes.fromhex(text)

    def meter_time(self, text: str | None, what: str) -> datetime:
        """Meter-local ISO time given as option ``what`` (now, to the second, when None)."""
        if text is None:
            return datetime.now().replace(microsecond=0)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{what} {text!r} is not an ISO time such as 2026-12-06T00:00:00")
        if when.tzinfo is not None:
            self.fail(f"{what} must be meter-local time without an offset")
        return when

    def print_frames(
        self,
        raw: bytes,
        stream: FrameStream[F],
        describe: Callable[[F], Mapping[str, Any]],
        pretty: bool,
    ) -> None:
        """Every frame in ``raw`` as a JSON line; none is an error, skipped noise a note."""
        stream.feed(raw)
        stream.feed_eof()
        found = 0
        for frame in stream:
            found += 1
            out = describe(frame)
            typer.echo(json.dumps(out, ensure_ascii=False, indent=2 if pretty else None))
        if not found:
            self.fail(f"no {self.protocol} frame in {len(raw)} bytes")
        if stream.dropped_bytes or stream.bad_checksums:
            self.note(
                f"skipped {stream.dropped_bytes} bytes of noise, "
                f"{stream.bad_checksums} bad checksums"
            )


__all__ = ["FieldTool"]
