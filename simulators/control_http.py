"""JSON over HTTP on loopback for ``FleetControl`` (stdlib server in a thread).

``POST /api/<method>`` with a JSON object of keyword arguments (or ``GET /api/<method>?k=v``)
returns ``{"ok": true, "result": …}``; a bad request returns 400 with ``{"ok": false,
"error": "…"}``.  Calls are run on the fleet's event loop (``run_coroutine_threadsafe``), so
meter state is only ever touched by the loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from simulators.control import FleetControl
from simulators.endpoints import listen_failed
from simulators.errors import ControlError, SimConfigError

CALL_TIMEOUT = 30.0


def _coerce(value: str) -> Any:
    """Query-string values: JSON literals where they parse (``true``, ``0.3``), else text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


class ControlServer:
    """The HTTP control interface of one fleet."""

    def __init__(self, control: FleetControl, listen: str = "127.0.0.1:0") -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise SimConfigError(f"control: expected HOST:PORT, got {listen!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SimConfigError("control: the control interface listens on loopback only")
        self.control = control
        self._address = (host, int(port))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    async def start(self) -> None:
        """Start serving in a daemon thread."""
        loop = asyncio.get_running_loop()
        control = self.control

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _run(self, args: dict[str, Any]) -> None:
                path = urlsplit(self.path).path
                if not path.startswith("/api/"):
                    self._answer(404, {"ok": False, "error": "use /api/<method>"})
                    return
                method = path[len("/api/") :]

                async def call() -> Any:
                    return control.call(method, args)

                try:
                    future = asyncio.run_coroutine_threadsafe(call(), loop)
                    result = future.result(CALL_TIMEOUT)
                except ControlError as exc:
                    self._answer(400, {"ok": False, "error": str(exc)})
                    return
                self._answer(200, {"ok": True, "result": result})

            def do_GET(self) -> None:
                query = urlsplit(self.path).query
                self._run({k: _coerce(v) for k, v in parse_qsl(query)})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    args = json.loads(raw or b"{}")
                except ValueError:
                    self._answer(400, {"ok": False, "error": "body is not JSON"})
                    return
                if not isinstance(args, dict):
                    self._answer(400, {"ok": False, "error": "body must be a JSON object"})
                    return
                self._run(args)

        try:
            self._server = ThreadingHTTPServer(self._address, Handler)
        except OSError as exc:
            raise listen_failed("the control interface", *self._address, exc) from exc
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sim-control", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            server = self._server
            await asyncio.get_running_loop().run_in_executor(None, server.shutdown)
            server.server_close()
            self._server = None
