"""Shared pieces of the prepayment tests: an archive with metering points, readings, a job runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert

from headend.db import writing
from headend.db.tables import areas, meters, readings
from headend.prepay import charging, store
from headend.prepay.money import from_micro

SH = ZoneInfo("Asia/Shanghai")
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
TIERED = {
    "kind": "tiered",
    "period": "monthly",
    "steps": [
        {"upto": "200", "price": "0.5283"},
        {"upto": "400", "price": "0.5783"},
        {"upto": None, "price": "0.8283"},
    ],
}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


def seed_meters(
    engine: Engine,
    ids: list[str],
    *,
    area: str = "A1",
    gateway: str = "gw1",
    tariff: str = "res",
    keep_power: frozenset[str] = frozenset(),
    multiplier: str = "1",
) -> None:
    """An area with ``ids`` as customer meters, each its own point ``P-<id>``."""
    with writing(engine) as conn:
        conn.execute(insert(areas).values(id=area, name=area, gateway=gateway, valid_from=SINCE))
        conn.execute(
            insert(meters),
            [
                {
                    "id": m,
                    "point": f"P-{m}",
                    "area": area,
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": f"{n + 1:012d}",
                    "multiplier": multiplier,
                    "tariff_category": tariff,
                    "keep_power": m in keep_power,
                    "valid_from": SINCE,
                }
                for n, m in enumerate(ids)
            ],
        )


def add_readings(
    conn: Connection,
    meter: str,
    points: list[tuple[datetime, str]],
    *,
    kind: str = "interval",
    quantity: str = "energy.active.import.total",
) -> None:
    conn.execute(
        insert(readings),
        [
            {
                "meter": meter,
                "quantity": quantity,
                "time": t,
                "kind": kind,
                "value": v,
                "gateway": "gw1",
                "gateway_time": t,
                "flags": "",
            }
            for t, v in points
        ],
    )


def open_account(
    engine: Engine,
    account: str,
    points: list[str],
    *,
    mode: str = "prepaid",
    at: datetime = SINCE,
    contacts: list[str] | None = None,
    overdraft: str = "0",
    tariff: str | None = None,
    split: dict[str, Any] | None = None,
    language: str = "zh",
) -> None:
    with writing(engine) as conn:
        store.create_account(
            conn,
            account,
            mode=mode,
            contacts=contacts or [],
            overdraft=Decimal(overdraft),
            language=language,
            actor="test",
            now=at,
        )
        for p in points:
            store.link_point(conn, account, p, at, tariff=tariff, split=split, actor="test", now=at)


def put_tariff(
    engine: Engine, tariff: str, definition: dict[str, Any], at: datetime = SINCE
) -> None:
    with writing(engine) as conn:
        store.put_tariff(conn, tariff, definition, at, actor="test", now=at)


def run_charges(engine: Engine, now: datetime, *, full: bool = False) -> charging.PointResult:
    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    return charging.charge_all(factory, SH, now=now, full=full, lookback=timedelta(days=62))


def balance(engine: Engine, account: str) -> Decimal:
    with writing(engine) as conn:
        return from_micro(store.balance_micro(conn, account))


# --- notification sinks: a local SMTP server and a local webhook --------------------------------

import email  # noqa: E402
import json as _json  # noqa: E402
import threading  # noqa: E402
import time as _time  # noqa: E402
from email.policy import default as _policy  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402

from tests.services import free_port  # noqa: E402


class SmtpSink:
    """An aiosmtpd server on loopback keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(email.message_from_bytes(envelope.content, policy=_policy))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=prepay@taiqu.test&to={to}"

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages:
            part = m.get_body(preferencelist=("plain", "html"))
            out.append(part.get_content() if part is not None else "")
        return out


class WebhookSink:
    """A loopback HTTP server keeping every JSON body POSTed to it; ``fail`` answers 500s."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.fail:
                    sink.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                sink.bodies.append(_json.loads(data))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true (a deadline, never a fixed sleep)."""
    deadline = _time.monotonic() + timeout
    while not condition():
        if _time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        _time.sleep(0.01)
