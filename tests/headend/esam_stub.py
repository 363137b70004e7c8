"""A laboratory encryption machine on a real socket: Taiqu's encryption-machine protocol v1
(``headend/esam/network.py``, docs/security.md) over HTTP, backed by the software service.

Not a mock: a ``ThreadingHTTPServer`` on 127.0.0.1 that parses the documented requests and
answers the documented JSON, so the network adapter is exercised byte for byte.  Faults a real
machine has: a wrong token (401), a refusal (422 ``unknown_meter``), an internal error (500), a
stall longer than the client's timeout, a connection dropped without an answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from headend.esam import Challenge, EncryptionRefused, SessionInfo
from headend.esam.software import SoftwareEncryptionService


class LabMachine:
    """What the stub does, and the faults it is told to show."""

    def __init__(self, key_file: Path, token: str | None = None) -> None:
        self.service = SoftwareEncryptionService(key_file)
        self.token = token
        self.fault: str | None = None  # "500" | "stall" | "drop" | "garbage"
        self.stall_s = 2.0
        self.calls: list[str] = []

    def answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        h = bytes.fromhex
        if operation == "authenticate":
            c = self.service.authenticate(body["meter"])
            return 200, {
                k: getattr(c, k).hex().upper() for k in ("factor", "random1", "ciphertext1")
            }
        s = body["session"]
        challenge = Challenge(s["meter"], h(s["factor"]), h(s["random1"]), h(s["ciphertext1"]))
        session = SessionInfo(challenge, h(s["random2"]), h(s["esam_serial"]))
        seq = int(body["seq"])
        if operation == "seal-control":
            plain = h(body["plaintext"])
            until = datetime.strptime(plain[2:].hex(), "%y%m%d%H%M%S")
            sealed = self.service.seal_control(session, seq, plain[0], until)
            return 200, {"sealed": sealed.hex().upper()}
        if operation == "seal-write":
            payload = self.service.seal_write(
                session, seq, int(body["di"], 16), h(body["value"]), int(body["level"], 16)
            )
            return 200, {"payload": payload.hex().upper()}
        if operation == "verify-reply-mac":
            valid = self.service.verify_reply_mac(
                session, seq, h(body["header"]), h(body["data"]), h(body["mac"])
            )
            return 200, {"valid": valid}
        return 404, {"error": "unknown_operation", "message": operation}


def _handler(machine: LabMachine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            operation = self.path.rsplit("/v1/", 1)[-1]
            machine.calls.append(operation)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if machine.token and self.headers.get("Authorization") != f"Bearer {machine.token}":
                return self._send(401, {"error": "unauthorised", "message": "bad token"})
            if machine.fault == "drop":
                self.close_connection = True
                return None
            if machine.fault == "stall":
                time.sleep(machine.stall_s)
            if machine.fault == "garbage":  # 200, but not what the protocol says
                return self._send(200, {"sealed": "00", "factor": "xyz"})
            if machine.fault == "500":
                return self._send(500, {"error": "internal", "message": "key store busy"})
            try:
                status, answer = machine.answer(operation, body)
            except EncryptionRefused as exc:
                status, answer = 422, {"error": "unknown_meter", "message": str(exc)}
            except (KeyError, ValueError) as exc:
                status, answer = 400, {"error": "bad_request", "message": str(exc)}
            return self._send(status, answer)

    return Handler


@contextmanager
def running(machine: LabMachine) -> Iterator[str]:
    """Serve ``machine`` on a free port of 127.0.0.1; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(machine))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hsm"
    finally:
        server.shutdown()
        server.server_close()
