"""A network adapter for a utility's encryption machine: Taiqu's encryption-machine protocol v1.

A utility's encryption machine (密码机) sits behind its own network service; a vendor bridge (or
the machine itself) exposes the four operations below, and this adapter speaks to it.  The
protocol, documented in docs/security.md §ESAM encryption service, is HTTP/1.1 with JSON bodies,
over TLS in production::

    POST {url}/v1/authenticate       {"meter"}                               → {"factor",
                                                                                "random1",
                                                                                "ciphertext1"}
    POST {url}/v1/seal-control       {"session", "seq", "plaintext"}         → {"sealed"}
    POST {url}/v1/seal-write         {"session", "seq", "di", "value",
                                      "level": "98" | "99"}                  → {"payload"}
    POST {url}/v1/verify-reply-mac   {"session", "seq", "header", "data",
                                      "mac"}                                 → {"valid": bool}

    session = {"meter", "factor", "random1", "ciphertext1", "random2", "esam_serial"}

Byte strings are upper-case hex, most significant byte first; ``meter`` is the 12-digit address;
``plaintext`` is ``N1 N2 YYMMDDhhmmss``.  The caller sends ``Authorization: Bearer <token>``
(read from a 0600 file) when one is configured.  Answers: 200 with the JSON above; 4xx with
``{"error": code, "message": text}`` — the machine refuses (``EncryptionRefused``); 5xx, a
timeout (``timeout_s``, 3 s by default), a refused or dropped connection or an answer that is not
the JSON above — the machine is unavailable (``EncryptionUnavailable``; the secured flow fails
the target with the reason and sends nothing to the meter).  Each call is one request, never
retried here: a sealed block must not be made twice behind the flow's back.

``[esam] service = "hsm"``, ``hsm_adapter = "headend.esam.network:make_service"`` and
``[esam.hsm] url / token_file / ca_file / timeout_s``.  Only an ``https://`` URL is
production-ready; plain ``http://`` is for a laboratory stub.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from headend.esam.service import (
    Challenge,
    EncryptionRefused,
    EncryptionUnavailable,
    SessionInfo,
    control_plaintext,
)

_HEX = re.compile(r"^([0-9A-F]{2})*$")
SIZES = {"factor": 8, "random1": 8, "ciphertext1": 8, "sealed": 20}


def _hex(value: bytes) -> str:
    return value.hex().upper()


def _session(session: SessionInfo) -> dict[str, str]:
    c = session.challenge
    return {
        "meter": c.address,
        "factor": _hex(c.factor),
        "random1": _hex(c.random1),
        "ciphertext1": _hex(c.ciphertext1),
        "random2": _hex(session.random2),
        "esam_serial": _hex(session.esam_serial),
    }


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (owner-only, one line)."""
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as exc:
        raise EncryptionUnavailable(f"esam.hsm.token_file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EncryptionUnavailable(f"esam.hsm.token_file {path} must be 0600 (chmod 600 {path})")
    if not token or any(ch.isspace() for ch in token):
        raise EncryptionUnavailable(f"esam.hsm.token_file {path} must hold one token")
    return token


@dataclass
class NetworkEncryptionService:
    """``EncryptionService`` over Taiqu's encryption-machine protocol v1 (module docstring)."""

    url: str
    token: str | None = None
    timeout_s: float = 3.0
    ca_file: Path | None = None
    name: str = "network"
    production_ready: bool = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EncryptionRefused(f"esam.hsm.url {self.url!r} is not an http(s) URL")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self.production_ready = self._https
        self.name = f"network {parts.scheme}://{parts.netloc}"

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)

    def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request("POST", f"{self._base}/v1/{operation}", json.dumps(body), headers)
            response = conn.getresponse()
            status, raw = response.status, response.read(65536)
        except TimeoutError:
            raise EncryptionUnavailable(
                f"{operation}: no answer within {self.timeout_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise EncryptionUnavailable(f"{operation}: {exc or type(exc).__name__}") from None
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise EncryptionUnavailable(f"{operation}: HTTP {status}, not a JSON object")
        if 400 <= status < 500:
            code, message = answer.get("error", f"http_{status}"), answer.get("message", "")
            raise EncryptionRefused(f"{operation}: {code}: {message}".rstrip(": "))
        if status != 200:
            raise EncryptionUnavailable(f"{operation}: HTTP {status}")
        return answer

    @staticmethod
    def _bytes(answer: dict[str, Any], key: str, operation: str) -> bytes:
        value = answer.get(key)
        size = SIZES.get(key)
        if not isinstance(value, str) or not _HEX.match(value) or not value:
            raise EncryptionUnavailable(f"{operation}: the answer has no hex {key!r}")
        raw = bytes.fromhex(value)
        if size is not None and len(raw) != size:
            raise EncryptionUnavailable(f"{operation}: {key} of {len(raw)} bytes ({size} expected)")
        return raw

    def authenticate(self, address: str) -> Challenge:
        answer = self._call("authenticate", {"meter": address})
        factor, r1, c1 = (
            self._bytes(answer, k, "authenticate") for k in ("factor", "random1", "ciphertext1")
        )
        return Challenge(address, factor, r1, c1)

    def seal_control(
        self, session: SessionInfo, seq: int, action: int, valid_until: datetime
    ) -> bytes:
        plaintext = _hex(control_plaintext(action, valid_until))
        body = {"session": _session(session), "seq": seq, "plaintext": plaintext}
        return self._bytes(self._call("seal-control", body), "sealed", "seal-control")

    def seal_write(
        self, session: SessionInfo, seq: int, di: int, value: bytes, level: int
    ) -> bytes:
        body = {
            "session": _session(session),
            "seq": seq,
            "di": f"{di:08X}",
            "value": _hex(value),
            "level": f"{level:02X}",
        }
        payload = self._bytes(self._call("seal-write", body), "payload", "seal-write")
        if len(payload) <= 4:
            raise EncryptionUnavailable("seal-write: the payload has no MAC")
        return payload

    def verify_reply_mac(
        self, session: SessionInfo, seq: int, header: bytes, data: bytes, mac: bytes
    ) -> bool:
        body = {
            "session": _session(session),
            "seq": seq,
            "header": _hex(header),
            "data": _hex(data),
            "mac": _hex(mac),
        }
        valid = self._call("verify-reply-mac", body).get("valid")
        if not isinstance(valid, bool):
            raise EncryptionUnavailable("verify-reply-mac: the answer has no boolean 'valid'")
        return valid


def make_service(options: dict[str, Any]) -> NetworkEncryptionService:
    """The factory ``[esam] hsm_adapter`` names: options are ``[esam.hsm]``."""
    unknown = set(options) - {"url", "token_file", "ca_file", "timeout_s"}
    if unknown or "url" not in options:
        raise EncryptionRefused(
            f"esam.hsm needs url (and optionally token_file, ca_file, timeout_s); "
            f"unknown: {sorted(unknown)}"
        )
    timeout = float(options.get("timeout_s", 3.0))
    if not 0.1 <= timeout <= 30:
        raise EncryptionRefused("esam.hsm.timeout_s must be 0.1-30 seconds")
    token_file = options.get("token_file")
    ca_file = options.get("ca_file")
    return NetworkEncryptionService(
        str(options["url"]),
        read_token(Path(token_file)) if token_file else None,
        timeout,
        Path(ca_file) if ca_file else None,
    )
