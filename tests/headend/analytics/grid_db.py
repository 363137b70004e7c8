"""Store a simulated grid (``simulators.grid``) in a head-end database as a gateway would.

The archive (gateways, areas, meters with their PV flag) places each meter where the *archive*
says (a mis-mapped meter in its wrong area); readings are what the gateway collects: daily frozen
import and export registers at local midnight, and optionally 15-minute (or coarser) interval
readings of the import register, voltage, live and neutral current and relay state; cover-open
events.  Used by the analytics tests and by bench/analytics_*.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from headend.db import writing
from headend.db.tables import areas, events, gateways, meters, readings
from simulators.grid import GridRun

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
IMPORT, EXPORT = "energy.active.import.total", "energy.active.export.total"


def _kwh(value: float) -> str:
    return f"{value:.2f}"


def store_archive(engine: Engine, run: GridRun, prefix: str = "") -> None:
    """Gateways, areas and meters as the archive has them (area ids prefixed with ``prefix``)."""
    names = sorted({t.mapped_area for t in run.meters.values()})
    with writing(engine) as conn:
        for a in names:
            conn.execute(insert(gateways).values(id=f"gw-{prefix}{a}", valid_from=SINCE))
            conn.execute(
                insert(areas).values(id=f"{prefix}{a}", gateway=f"gw-{prefix}{a}", valid_from=SINCE)
            )
        conn.execute(
            insert(meters),
            [
                {"id": t.meter, "point": t.meter, "area": f"{prefix}{t.mapped_area}", "bus": "rs485-1",
                 "protocol": "dlt645-2007", "address": f"{n:012d}", "role": t.role,
                 "pv": t.pv_kw > 0, "valid_from": SINCE}
                for n, t in enumerate(run.meters.values(), start=1)
            ],
        )  # fmt: skip


def store_readings(
    engine: Engine,
    run: GridRun,
    *,
    interval_every: int = 0,
    interval_days: int | None = None,
    prefix: str = "",
    quantities: tuple[str, ...] | None = None,
) -> int:
    """Frozen registers each midnight; with ``interval_every`` > 0, interval readings every that
    many steps (over the last ``interval_days`` days, default all; only ``quantities`` if given).
    Returns the rows written."""
    cfg = run.config
    per_day = cfg.steps_per_day
    first_interval = 0 if interval_days is None else (cfg.days - interval_days) * per_day
    written = 0
    with writing(engine) as conn:
        for meter, s in run.series.items():
            gw = f"gw-{prefix}{run.meters[meter].mapped_area}"
            rows = []
            for d in range(cfg.days + 1):
                at = run.times[d * per_day]
                for q, reg in ((IMPORT, s.import_kwh), (EXPORT, s.export_kwh)):
                    rows.append(
                        {"meter": meter, "quantity": q, "time": at, "kind": "daily_frozen",
                         "value": _kwh(reg[d * per_day]), "gateway": gw,
                         "gateway_time": at + timedelta(minutes=6), "freeze_time": at, "flags": ""}
                    )  # fmt: skip
            if interval_every:
                for i in range(max(first_interval, interval_every), len(run.times), interval_every):
                    at = run.times[i]
                    values = {
                        IMPORT: _kwh(s.import_kwh[i]),
                        EXPORT: _kwh(s.export_kwh[i]),
                        "voltage.a": f"{s.voltage[i - 1]:.1f}",
                        "current.a": f"{s.current_live[i - 1]:.2f}",
                        "current.n": f"{s.current_neutral[i - 1]:.2f}",
                        "relay.state": "open" if s.relay_open[i - 1] else "closed",
                    }
                    if quantities is not None:
                        values = {q: v for q, v in values.items() if q in quantities}
                    rows += [
                        {"meter": meter, "quantity": q, "time": at, "kind": "interval", "value": v,
                         "gateway": gw, "gateway_time": at, "freeze_time": None, "flags": ""}
                        for q, v in values.items()
                    ]  # fmt: skip
            conn.execute(insert(readings), rows)
            written += len(rows)
            for step in s.cover_open_at:
                at = run.times[step]
                conn.execute(
                    insert(events).values(
                        key=f"{meter}:cover:{step}", gateway=gw, meter=meter,
                        type="meter_cover_open", time=at, start=at, detected=at,
                        details=json.dumps({"record_no": 1}), received=at,
                    )
                )  # fmt: skip
    return written
