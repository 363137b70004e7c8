"""The demo's world: its simulated clock, the fleet file, the broker and the head-end's config.

The clock starts at 07:40 local on the latest working day (Monday–Friday, not a public holiday
of China when the ``holidays`` package is installed) in the past: the gateways' first sweep
back-fills the seven days of daily frozen readings before it, the demo has those days computed
as soon as they are in, and the disconnect window of the guard rails (08:00–17:00 on working days)
opens twenty simulated minutes after the start, so the prepayment story (notice → final →
disconnect → top-up → reconnect) plays within the first minutes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

ZONE = "Asia/Shanghai"
START_AT = clock_time(7, 40)  # local: before the disconnect window opens at 08:00
BACKFILL_DAYS = 7  # the gateways' default back-fill window (simulators' gateway.toml)
BYPASS_DAYS_AGO = 30  # area2's bypasses started this long before the clock's start
BYPASS_METERS = 3  # area2's first customers, each bypassing half its energy
BYPASS_FRACTION = 0.5  # the share of the energy the bypassed meters still register
# area2 has at least this many DL/T 645 customers: a theft older than the history is found only
# against similar homes, and the peer comparison wants eight or more besides the one compared
BYPASS_AREA_CUSTOMERS = 12
COVER_DAYS_AGO = 2  # area3's meter cover was opened (once) this long before the start
ESAM_METERS = 2  # area1's first customers are cost-control meters with an ESAM


def taiqu(*args: str) -> list[str]:
    """The ``taiqu`` command with this interpreter."""
    return [sys.executable, "-m", "taiqu.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Wait until ``port`` accepts connections, failing early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} (see its log)")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def _holiday(day: date) -> bool:
    try:
        import holidays
    except ImportError:  # the head-end's extra is not installed: weekdays only
        return False
    return day in holidays.country_holidays("CN", years=day.year)


def history_start(start: datetime, zone: str = ZONE) -> datetime:
    """Local midnight of the oldest day the first back-fill completes (the archive's start)."""
    tz = ZoneInfo(zone)
    day = start.astimezone(tz).date() - timedelta(days=BACKFILL_DAYS - 1)
    return datetime.combine(day, clock_time(0), tzinfo=tz)


def clock_start(now: datetime, zone: str = ZONE) -> datetime:
    """07:40 local on the latest working day whose 07:40 is not after ``now``."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    while True:
        start = datetime.combine(day, START_AT, tzinfo=tz)
        if start <= now and day.isoweekday() <= 5 and not _holiday(day):
            return start
        day -= timedelta(days=1)


def fleet_toml(
    areas: int,
    meters: int,
    start: datetime,
    factor: float,
    anchor: datetime,
    esam_key: Path | None = None,
) -> str:
    """The demo fleet: per area one DL/T 645-2007 bus with the area total meter, one Modbus bus.

    With ``esam_key`` (the laboratory key file the head-end shares) area1's first ``ESAM_METERS``
    customers are cost-control meters with an ESAM: they refuse plaintext control, so the story
    account's disconnect (area1's first customer, see ``taiqu.demo.prepay``) runs the secured flow.

    area2 (at least ``BYPASS_AREA_CUSTOMERS`` DL/T 645 customers): the first ``BYPASS_METERS``
    (``…0001``…) register only half their energy, since a month before the start (before the
    back-filled history: a long-standing theft with no change point in the data); area3: the
    meter cover of ``…0500`` was opened two days before the start and again 90 s after it, both
    before the gateway's first sweep.
    The Modbus meters (no daily freezes) are new commercial customers, energised at the start:
    before it no energy flows to them, so the back-filled days balance without them.
    """
    bypass_at = (start - timedelta(days=BYPASS_DAYS_AGO)).isoformat()
    cover_at = (start - timedelta(days=COVER_DAYS_AGO, hours=5)).isoformat()
    unpowered = f"at = {(start - timedelta(days=30)).isoformat()}, until = {start.isoformat()}"
    lines = [
        f"clock = {{ start = {start.isoformat()}, factor = {factor:g}, "
        f"anchor = {anchor.isoformat()} }}",
        f'zone = "{ZONE}"',
    ]
    if esam_key is not None:
        lines += ["", "[esam]", f"key_file = {json.dumps(str(esam_key))}"]
    for a in range(1, areas + 1):
        area, gw = f"area{a}", f"gw-{a:04d}"
        lines += [
            "",
            "[[areas]]",
            f'name = "{area}"',
            f'gateway_id = "{gw}"',
            f"technical_loss = {0.03 + 0.01 * a:.2f}",
        ]
        lines += [
            "",
            "[[buses]]",
            f'name = "{area}-rs485-1"',
            f'area = "{area}"',
            f'listen = "tcp://127.0.0.1:{free_port()}"',
            "baud = 2400",
            "pace = false",
        ]
        lines += [
            "",
            "[[buses]]",
            f'name = "{area}-rs485-2"',
            f'area = "{area}"',
            f'listen = "tcp://127.0.0.1:{free_port()}"',
            "baud = 9600",
            'parity = "N"',
            "pace = false",
        ]
        base = f"2026{a:02d}00"
        lines += [
            "",
            "[[meters]]",
            f'bus = "{area}-rs485-1"',
            f'address = "{base}9999"',
            'role = "area_total"',
            'profile = "flat"',
            f"seed = {a * 100}",
        ]
        dlt = max(1, meters - 2)
        if a == 2:
            dlt = max(dlt, BYPASS_AREA_CUSTOMERS)
        first = 1
        if a == 2:  # long-standing thieves: half their energy bypasses the meter
            first = min(BYPASS_METERS, dlt) + 1
            lines += [
                "",
                "[[meters]]",
                f'bus = "{area}-rs485-1"',
                f'address = "{base}0001"',
                f"count = {first - 1}",
                'profile = "residential"',
                f"seed = {a * 1000}",
                f'scenarios = [{{ kind = "bypass", at = {bypass_at}, '
                f"fraction = {BYPASS_FRACTION} }}]",
            ]
        if a == 1 and esam_key is not None:
            first = min(ESAM_METERS, dlt) + 1
            lines += [
                "",
                "[[meters]]",
                f'bus = "{area}-rs485-1"',
                f'address = "{base}0001"',
                f"count = {first - 1}",
                "esam = true",
                'profile = "residential"',
                f"seed = {a * 1000}",
            ]
        if dlt >= first:
            lines += [
                "",
                "[[meters]]",
                f'bus = "{area}-rs485-1"',
                'protocol = "dlt645-2007"',
                f'address = "{base}{first:04d}"',
                f"count = {dlt - first + 1}",
                'profile = "residential"',
                f"seed = {a * 1000 + first - 1}",
            ]
        if a == 3:
            lines += [
                "",
                "[[meters]]",
                f'bus = "{area}-rs485-1"',
                f'address = "{base}0500"',
                'profile = "commercial"',
                f"seed = {a * 1000 + 500}",
                f'scenarios = [{{ kind = "meter_cover_open", at = {cover_at}, duration_s = 600 }},',
                '  { kind = "meter_cover_open", after_s = 90, duration_s = 300 }]',
            ]
        lines += [
            "",
            "[[meters]]",
            f'bus = "{area}-rs485-2"',
            'protocol = "modbus"',
            'model = "DDSU666"',
            'address = "1"',
            "count = 2",
            'profile = "commercial"',
            f"seed = {a * 1000 + 900}",
            f'scenarios = [{{ kind = "power_down", {unpowered} }}]',
        ]
    return "\n".join(lines) + "\n"


def headend_toml(
    db: Path,
    mqtt_port: int,
    api_port: int,
    start: datetime,
    factor: float,
    anchor: datetime,
    keys_dir: Path,
    esam_key: Path | None = None,
    broker_dir: Path | None = None,
) -> str:
    """The head-end's configuration: SQLite, the demo broker, the API port, the fleet's clock.

    Commands are signed with a key in ``keys_dir`` (``keys-init --valid-from`` the clock's start).
    The nightly analytics job recomputes the whole back-fill window (the demo orders the first
    computation itself once the back-fill is in: ``taiqu.demo.history``).  Prepayment reminds
    at small balances with half an hour's grace and reconnects directly (no button to press in
    a demo); the guard rails are the product's defaults.  With ``esam_key``, ESAM meters'
    commands are sealed by the laboratory encryption service (``production = false``: NOT for
    production).  The head-end's broker identity (``taiqu-headend``, its password in
    ``mqtt-password`` next to this file) and the enrolment paths live in the work directory;
    with ``broker_dir`` (mosquitto) it connects over TLS trusting the broker's CA there.
    """
    work = db.parent
    tls = f'ca_file = "{broker_dir / "ca.crt"}"\n' if broker_dir is not None else ""
    esam = ""
    if esam_key is not None:
        esam = (
            "\n# Laboratory ESAM service: the demo's simulated meters share this key. NOT FOR "
            f'PRODUCTION.\n[esam]\nservice = "software"\nkey_file = {json.dumps(str(esam_key))}\n'
            "production = false\n"
        )
    return (
        f"clock = {{ start = {start.isoformat()}, factor = {factor:g}, "
        f"anchor = {anchor.isoformat()} }}\n\n"
        f'[database]\nurl = "sqlite:///{db}"\nsqlite_synchronous = "NORMAL"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nclient_id = "taiqu-headend"\n'
        f'username = "taiqu-headend"\npassword_file = "{work / "mqtt-password"}"\n{tls}\n'
        "[ingest]\noutbox_interval = 0.2\n\n"
        f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n\n'
        f'[security]\nkeys_dir = "{keys_dir}"\nsign_commands = true\n'
        f'broker_dir = "{work / "broker"}"\nca_dir = "{work / "ca"}"\n'
        f'bundle_dir = "{work / "enrol"}"\nbroker_host = "127.0.0.1"\nbroker_port = {mqtt_port}\n\n'
        f'[guards]\ntimezone = "{ZONE}"\n\n'
        f"[commands]\ndispatch_interval = {min(60.0, factor):g}\n\n"
        f'[analytics]\nzone = "{ZONE}"\nlookback_days = {BACKFILL_DAYS}\n\n'
        '[prepay]\nbalance_thresholds = ["5", "2"]\ndays_thresholds = []\n'
        'final_notice_balance = "0"\ngrace_hours = 0.5\nreconnect_threshold = "0"\n'
        'reconnect_action = "relay_close_direct"\njob_interval = 60\n' + esam
    )
