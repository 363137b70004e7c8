"""Columnar "sweep" records: the wire form of a run of reading records taken together.

A sweep reads the same quantities from many meters within seconds, so a batch repeats each
meter's record shape.  On the wire such a run travels as one ``sw`` record::

    {"r": "sw", "k": "interval", "gt": "2026-11-24T05:15:02Z", "mz": 28800,
     "qs": ["energy.active.import.total", "energy.active.import.t1"],
     "rows": [["202611240001", 0, -1, "1234.56", "100.01"],
              ["202611240002", 1, null, "88.00", null]]}

A row is ``[meter, gateway time − gt (s), meter time − gateway time (s) or null, values…]``;
``mz`` is the meter clocks' UTC offset in seconds, ``null`` values are absent quantities, and
``fl``/``c`` apply to every row.  Each row is one record (one sequence number).  Receivers expand
sweeps back into ``rd`` records before validation, so the typed model never sees them; a run is
compacted only when that is exact (whole seconds, one UTC offset, the same quantities).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from protocols.errors import ContractError

_RD_KEYS = {"r", "m", "k", "gt", "mt", "fl", "c", "q"}


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None and stamp.microsecond == 0 else None


def _shape(record: dict[str, Any]) -> tuple[Any, ...] | None:
    """What records of one sweep share, or None when this record cannot join one."""
    if (
        record.get("r") != "rd"
        or not set(record) <= _RD_KEYS
        or not isinstance(record.get("q"), dict)
    ):
        return None
    gt = _time(record.get("gt"))
    if gt is None:
        return None
    offset: int | None = None
    if "mt" in record:
        mt = _time(record["mt"])
        delta = mt.utcoffset() if mt is not None else None
        if delta is None:
            return None
        offset = int(delta.total_seconds())
    fl, c = record.get("fl"), record.get("c")
    return (record["k"], tuple(fl) if fl else (), c, tuple(record["q"]), offset)


def compact(records: list[dict[str, Any]]) -> list[Any]:
    """Replace runs (≥ 2) of same-shaped reading records by sweep records."""
    out: list[Any] = []
    run: list[dict[str, Any]] = []
    shape: tuple[Any, ...] | None = None

    def flush() -> None:
        if len(run) >= 2:
            out.append(_sweep(run, shape))
        else:
            out.extend(run)
        run.clear()

    for record in records:
        this = _shape(record)
        if this is None or this != shape:
            flush()
            shape = this
            if this is None:
                out.append(record)
                continue
        run.append(record)
    flush()
    return out


def _sweep(run: list[dict[str, Any]], shape: tuple[Any, ...] | None) -> dict[str, Any]:
    assert shape is not None
    kind, flags, command, names, offset = shape
    base = _time(run[0]["gt"])
    assert base is not None
    rows = []
    for record in run:
        gt = _time(record["gt"])
        assert gt is not None
        mt = _time(record.get("mt"))
        lag = int((mt - gt).total_seconds()) if mt is not None else None
        q = record["q"]
        rows.append([record["m"], int((gt - base).total_seconds()), lag, *(q[n] for n in names)])
    sweep: dict[str, Any] = {"r": "sw", "k": kind, "gt": run[0]["gt"], "qs": list(names)}
    if offset is not None:
        sweep["mz"] = offset
    if flags:
        sweep["fl"] = list(flags)
    if command is not None:
        sweep["c"] = command
    sweep["rows"] = rows
    return sweep


def expand(records: Any) -> Any:
    """Turn sweep records back into reading records (``ContractError`` when malformed)."""
    if not isinstance(records, list) or not any(
        isinstance(r, dict) and r.get("r") == "sw" for r in records
    ):
        return records
    out: list[Any] = []
    for record in records:
        if isinstance(record, dict) and record.get("r") == "sw":
            out.extend(_rows(record))
        else:
            out.append(record)
    return out


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rows(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    names, rows, mz = sweep.get("qs"), sweep.get("rows"), sweep.get("mz")
    base = _time(sweep.get("gt"))
    if base is None or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ContractError("sweep record: needs 'gt' (aware, whole seconds) and 'qs' (names)")
    if not isinstance(rows, list) or (mz is not None and not (_int(mz) and abs(mz) < 86400)):
        raise ContractError("sweep record: 'rows' must be a list and 'mz' an offset in seconds")
    zone = timezone(timedelta(seconds=mz)) if mz is not None else None
    common: dict[str, Any] = {k: sweep[k] for k in ("k", "fl", "c") if k in sweep}
    out = []
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 3 + len(names)
            or not _int(row[1])
            or not (row[2] is None or _int(row[2]))
            or abs(row[1]) > 10**9
            or (row[2] is not None and (zone is None or abs(row[2]) > 10**9))
        ):
            raise ContractError(f"sweep record: malformed row {str(row)[:80]}")
        try:
            gt = base + timedelta(seconds=row[1])
            mt = None if row[2] is None else (gt + timedelta(seconds=row[2])).astimezone(zone)
        except OverflowError:
            raise ContractError(f"sweep record: time out of range in row {str(row)[:80]}") from None
        record: dict[str, Any] = {"r": "rd", "m": row[0], **common, "gt": gt.isoformat()}
        if mt is not None:
            record["mt"] = mt.isoformat()
        record["q"] = {n: v for n, v in zip(names, row[3:], strict=True) if v is not None}
        out.append(record)
    return out
