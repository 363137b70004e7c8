"""The demo's prepayment: tariffs, accounts on a share of the customers, a local reminder sink,
and one account whose credit runs out in the first minutes.

* Tariffs in force from the clock's start: ``res-flat`` (flat), ``res-tou`` (time of use:
  sharp/peak/flat/valley) and ``res-tou-tiered`` (``tou_tiered``: time-of-use base prices plus a
  surcharge by the household's yearly total, 居民分时 + 阶梯).  The last is modelled on Zhejiang's
  residential tariff as published by its price bureau (浙价资〔2012〕185号, from memory, not
  checked against the notice's text: demo figures, not a price list): peak 08:00–22:00 at 0.568,
  valley 22:00–08:00 at 0.288 yuan/kWh; +0.05 above 2,760 kWh a year, +0.30 above 4,800.  The
  simulated meters keep four registers on their own table (sharp/peak/flat by day, valley
  23:00–08:00), and charging uses the registers: the three day registers carry the peak price
  (a register without a price would be charged at zero by the head-end's TOU pricing).
* Every other DL/T 645 customer meter of every area gets a prepaid account, on flat, TOU and
  TOU-with-tiers in turn (so every area has each), opened with a counter payment of ``OPENING``;
  the reminders go to the demo's sink.
* The **story account** (area1's first customer) opens with only ``STORY_OPENING``: the newcomer
  sees the balance notice, the final notice, the disconnect (planned after the grace hour, in the
  guard rails' window), then the demo pays ``STORY_TOPUP`` at the counter and supply is
  reconnected.  ``Story.step`` narrates each change on the demo's console.
* ``Sink``: an HTTP endpoint on loopback that apprise's ``json://`` notifier posts to; every
  message is appended to ``notifications.jsonl`` in the work directory (the console's
  notifications page shows the same messages as ``sent``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from taiqu.demo.client import Api, DemoError

OPENING = "200.00"
STORY_OPENING = "0.25"
STORY_TOPUP = "100.00"
FLAT = {"kind": "flat", "price": "0.5283"}
TOU = {
    "kind": "tou",
    "prices": {"1": "1.0780", "2": "0.8230", "3": "0.5283", "4": "0.2470"},
    "periods": [
        {"start": "00:00", "end": "08:00", "slot": 4},
        {"start": "08:00", "end": "10:00", "slot": 3},
        {"start": "10:00", "end": "12:00", "slot": 2},
        {"start": "12:00", "end": "14:00", "slot": 3},
        {"start": "14:00", "end": "17:00", "slot": 2},
        {"start": "17:00", "end": "19:00", "slot": 1},
        {"start": "19:00", "end": "22:00", "slot": 2},
        {"start": "22:00", "end": "00:00", "slot": 4},
    ],
}


TOU_TIERED = {
    "kind": "tou_tiered",
    # two periods, but the meters keep four registers: the day's three are priced as peak
    "prices": {"1": "0.568", "2": "0.568", "3": "0.568", "4": "0.288"},
    "periods": [
        {"start": "00:00", "end": "08:00", "slot": 4},
        {"start": "08:00", "end": "22:00", "slot": 2},
        {"start": "22:00", "end": "00:00", "slot": 4},
    ],
    "period": "yearly",
    "steps": [
        {"upto": "2760", "price": "0"},
        {"upto": "4800", "price": "0.05"},
        {"upto": None, "price": "0.30"},
    ],
}
TARIFFS: dict[str, dict[str, Any]] = {
    "res-flat": FLAT,
    "res-tou": TOU,
    "res-tou-tiered": TOU_TIERED,
}


class Sink:
    """A local notification sink: apprise posts JSON here; each message becomes a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(size, 1 << 20))
                try:
                    message = json.loads(body)
                except ValueError:
                    message = {"raw": body.decode(errors="replace")}
                with lock, open(sink.path, "a") as out:
                    out.write(json.dumps({"path": self.path, **message}, ensure_ascii=False))
                    out.write("\n")
                    sink.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="sink", daemon=True).start()

    def url(self, account: str) -> str:
        """The apprise URL of one customer's inbox."""
        return f"json://127.0.0.1:{self.port}/{account}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Accounts:
    """What ``open_accounts`` created: account → (area, tariff), and the story account."""

    tariffs: dict[str, str]
    areas: dict[str, str]
    story: str


def open_accounts(api: Api, meters: list[dict[str, Any]], start: datetime, sink: Sink) -> Accounts:
    """Tariffs and prepaid accounts on every other DL/T 645 customer (module docstring)."""
    at = start.isoformat()
    for tariff, definition in TARIFFS.items():
        api.call(
            "POST",
            f"/api/v1/prepay/tariffs/{tariff}",
            {"valid_from": at, "definition": definition, "name": tariff},
        )
    tariffs: dict[str, str] = {}
    areas: dict[str, str] = {}
    story = ""
    by_area: dict[str, list[dict[str, Any]]] = {}
    for m in meters:
        if m["role"] == "customer" and m["protocol"].startswith("dlt645"):
            by_area.setdefault(m["area"], []).append(m)
    for area in sorted(by_area):
        for i, m in enumerate(sorted(by_area[area], key=lambda m: m["id"])[::2]):
            account = f"acct-{m['id']}"
            tariff = list(TARIFFS)[i % len(TARIFFS)]
            api.call(
                "POST",
                "/api/v1/prepay/accounts",
                {
                    "id": account,
                    "name": f"customer {m['id']}",
                    "language": "zh",
                    "contacts": [sink.url(account)],
                },
            )
            amount = OPENING
            if not story:
                story, amount = account, STORY_OPENING
            # paid before its point is linked: an empty account would be reminded at once
            api.call(
                "POST",
                f"/api/v1/prepay/accounts/{account}/topups",
                {"reference": f"open-{account}", "amount": amount, "channel": "counter"},
            )
            api.call(
                "POST",
                f"/api/v1/prepay/accounts/{account}/points",
                {"point": m["id"], "valid_from": at, "tariff": tariff},
            )
            tariffs[account], areas[account] = tariff, area
    return Accounts(tariffs, areas, story)


@dataclass
class Story:
    """Follows the story account and pays at the counter once supply is off."""

    api: Api
    account: str
    say: Callable[[str], None]
    seen: dict[str, Any] = field(default_factory=dict)
    paid: bool = False

    def step(self) -> None:
        """Look once; narrate changes of stage and supply; top up after the disconnect."""
        try:
            acct = self.api.call("GET", f"/api/v1/prepay/accounts/{self.account}")
        except DemoError as exc:
            if "HTTP 401" not in str(exc):
                raise
            self.api.relogin()  # the head-end restarted with a new process; log in again
            return
        now = {"stage": acct["stage"], "supply": acct["supply"]}
        if now != {k: self.seen.get(k) for k in now}:
            planned = acct.get("disconnect_at")
            extra = (
                f", disconnect planned {planned}" if planned and acct["stage"] == "final" else ""
            )
            self.say(
                f"prepay {self.account}: stage {acct['stage']}, supply {acct['supply']}, "
                f"balance {acct['balance']} {acct['currency']}{extra}"
            )
            self.seen = now
        if acct["supply"] == "off" and not self.paid:
            self.api.call(
                "POST",
                f"/api/v1/prepay/accounts/{self.account}/topups",
                {"reference": f"story-{self.account}", "amount": STORY_TOPUP, "channel": "counter"},
            )
            self.paid = True
            self.say(f"prepay {self.account}: paid {STORY_TOPUP} at the counter → reconnect")
