"""Local bookkeeping tables: daily frozen index, key/value state, command log (SQL helpers)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

FROZEN_KEEP_SECONDS = 70 * 86400  # meters keep 62 days of frozen values; keep a little more


def stamp(moment: datetime) -> int:
    """Unix seconds of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return int(moment.timestamp())


def from_stamp(seconds: int) -> datetime:
    """The aware UTC datetime of unix seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def note_frozen(conn: sqlite3.Connection, meter: str, freeze_time: datetime, seq: int) -> None:
    """Remember that a daily frozen record of ``meter`` at ``freeze_time`` is stored."""
    conn.execute(
        "INSERT OR IGNORE INTO frozen (meter, freeze_time, seq) VALUES (?, ?, ?)",
        (meter, stamp(freeze_time), seq),
    )


def forget_old_frozen(conn: sqlite3.Connection, now: datetime) -> None:
    """Drop back-fill bookkeeping older than any meter can still return."""
    conn.execute("DELETE FROM frozen WHERE freeze_time < ?", (stamp(now) - FROZEN_KEEP_SECONDS,))


def last_frozen(conn: sqlite3.Connection, meter: str) -> datetime | None:
    row = conn.execute("SELECT max(freeze_time) FROM frozen WHERE meter = ?", (meter,)).fetchone()
    return None if row[0] is None else from_stamp(row[0])


def has_frozen(conn: sqlite3.Connection, meter: str, freeze_time: datetime) -> bool:
    row = conn.execute(
        "SELECT 1 FROM frozen WHERE meter = ? AND freeze_time = ?", (meter, stamp(freeze_time))
    ).fetchone()
    return row is not None


class Json(str):
    """A state value already encoded as JSON (stored as is)."""


def set_state(conn: sqlite3.Connection, key: str, value: Any, now: datetime) -> None:
    text = value if isinstance(value, Json) else json.dumps(value, separators=(",", ":"))
    conn.execute(
        "INSERT INTO state (key, value, updated) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        (key, text, now.isoformat()),
    )


def get_state(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def log_command(
    conn: sqlite3.Connection,
    command_id: str,
    state: str,
    at: datetime,
    meter: str | None,
    reason: str | None,
    detail: dict[str, Any] | None,
) -> None:
    conn.execute(
        "INSERT INTO commands (command_id, state, at, meter, reason, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (command_id, state, at.isoformat(), meter, reason, json.dumps(detail or {}, default=str)),
    )


def command_seen(conn: sqlite3.Connection, command_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM commands WHERE command_id = ? LIMIT 1", (command_id,))
    return row.fetchone() is not None


def command_log(conn: sqlite3.Connection, command_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT state, at, meter, reason, detail FROM commands WHERE command_id = ? ORDER BY id",
        (command_id,),
    ).fetchall()
    return [
        {
            "state": state,
            "at": datetime.fromisoformat(at),
            "meter": meter,
            "reason": reason,
            "detail": json.loads(detail),
        }
        for state, at, meter, reason, detail in rows
    ]
