"""The demo's clients: the head-end's API (stdlib HTTP only) and the simulators' control.

The demo imports none of gateway/headend/simulators: it talks to them as an operator would.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


class DemoError(RuntimeError):
    """A part of the demo did not come up (the message says which and where its log is)."""


@dataclass
class Api:
    """A tiny JSON client of the head-end's API (stdlib only: the demo imports no head-end)."""

    base: str
    token: str = ""
    _login: tuple[str, str] = ("", "")

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
        self.token = ""
        reply = self.call(
            "POST", "/api/v1/auth/token", form={"username": name, "password": password}
        )
        self.token = reply["access_token"]
        self._login = (name, password)

    def relogin(self) -> None:
        """Log in again with the last credentials (a token may not outlive its expiry)."""
        self.login(*self._login)


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
    columns = [
        "id", "area", "bus", "protocol", "address", "model", "role", "tariff_category", "esam"
    ]  # fmt: skip
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
                "esam": "true" if m.get("esam") else "",
            }
        )
    return buf.getvalue()


def import_archive(
    api: Api,
    meters: list[dict[str, Any]],
    gateways: dict[str, str],
    since: datetime,
    commissioned: datetime,
) -> int:
    """Gateways, areas and DL/T 645 meters in force from ``since``; the Modbus meters (new
    customers in the demo's story) from ``commissioned``.  Returns the meters created."""
    at = {"valid_from": since.isoformat()}
    for area, gateway in sorted(gateways.items()):
        api.call("POST", "/api/v1/gateways", {"id": gateway, "name": f"demo {area}"}, query=at)
        api.call("POST", "/api/v1/areas", {"id": area, "name": area, "gateway": gateway}, query=at)
    created = 0
    old = [m for m in meters if m["protocol"] != "modbus"]
    new = [m for m in meters if m["protocol"] == "modbus"]
    for group, when in ((old, since), (new, commissioned)):
        if group:
            query = {"valid_from": when.isoformat()}
            report = api.call(
                "POST", "/api/v1/meters/import", csv_text=meters_csv(group), query=query
            )
            created += len(report["created"])
    return created


def gateway_ids(configs: list[Path]) -> dict[str, str]:
    """Area → gateway id, from the gateway.toml files the simulators wrote."""
    out = {}
    for cfg in configs:
        for line in cfg.read_text().splitlines():
            if line.startswith("gateway_id"):
                out[cfg.stem.removeprefix("gateway-")] = json.loads(line.split("=", 1)[1])
    return out
