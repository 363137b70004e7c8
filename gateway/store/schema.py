"""The store's SQLite file: durability settings, tables and first-open initialisation.

Durability: WAL journal with ``synchronous=FULL``: every commit fsyncs the WAL before it returns,
so a committed row survives a power cut (given storage that honours flushes; see
docs/gateway-store.md).  One sweep, one ack, one event poll = one transaction = one fsync.

Tables::

    head      one row: schema version, epoch, last seq, acked upto, byte accounting, counters
    outbox    one row per record (seq INTEGER PRIMARY KEY): type rd|ev|gap, meter, kind, time,
              acked flag, accounted size, body = the record's contract JSON (sent verbatim)
    frozen    (meter, freeze time) of every daily frozen record stored (back-fill bookkeeping,
              kept after the records are pruned)
    state     small persistent key → JSON value
    commands  command log: one row per lifecycle step of a head-end command
    readings  view of the outbox's reading records;  events: view of its event records
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime
from pathlib import Path

import sqlite_utils

from gateway.errors import StoreCorruptError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x54514731  # "TQG1" in the file header: this is a Taiqu gateway store
ROW_OVERHEAD = 64  # bytes accounted per outbox row on top of its body (columns, b-tree, index)

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",  # fsync the WAL on every commit: committed = on the card
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_size_limit=8388608",  # truncate the WAL back to 8 MiB after checkpoints
    "PRAGMA cell_size_check=ON",  # notice a damaged page early instead of reading garbage
    "PRAGMA foreign_keys=ON",
)

_TABLES = """
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    epoch TEXT NOT NULL,
    created TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    acked_upto INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    unacked_bytes INTEGER NOT NULL,
    dropped_records INTEGER NOT NULL,
    pruned_records INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('rd', 'ev', 'gap')),
    meter TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    gap_first INTEGER,
    gap_last INTEGER,
    acked INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_unacked ON outbox (seq) WHERE acked = 0;
CREATE INDEX IF NOT EXISTS outbox_acked ON outbox (seq) WHERE acked = 1;
CREATE INDEX IF NOT EXISTS outbox_gaps ON outbox (gap_first) WHERE type = 'gap';
CREATE TABLE IF NOT EXISTS frozen (
    meter TEXT NOT NULL,
    freeze_time INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (meter, freeze_time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    command_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    meter TEXT,
    reason TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS commands_by_id ON commands (command_id);
CREATE VIEW IF NOT EXISTS readings AS
    SELECT seq, meter, kind, at, acked, body FROM outbox WHERE type = 'rd';
CREATE VIEW IF NOT EXISTS events AS
    SELECT seq, meter, kind AS type, at, acked, body FROM outbox WHERE type = 'ev';
"""


def new_epoch() -> str:
    """A fresh random stream id: 16 lowercase hex digits."""
    return secrets.token_hex(8)


def connect(path: Path) -> sqlite_utils.Database:
    """Open (or create) the file with the durability settings applied."""
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=5.0)
        db = sqlite_utils.Database(conn, execute_plugins=False)
        for pragma in PRAGMAS:
            db.execute(pragma)
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{path}: cannot open as SQLite ({exc})") from None
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreCorruptError(f"{path}: the filesystem does not support WAL (got {mode!r})")
    return db


def initialise(db: sqlite_utils.Database, path: Path, created: datetime) -> None:
    """Create the tables and the head row (with a new epoch) if this is a new store."""
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        has_head = "head" in db.table_names()
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and db.table_names()):
            raise StoreCorruptError(f"{path}: an SQLite file that is not a Taiqu gateway store")
        with db.atomic():
            for statement in _TABLES.split(";"):
                if statement.strip():
                    db.conn.execute(statement)
            if not has_head:
                db.conn.execute(
                    "INSERT INTO head VALUES (1, ?, ?, ?, 0, 0, 0, 0, 0, 0)",
                    (SCHEMA_VERSION, new_epoch(), created.isoformat()),
                )
                db.conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        version = db.execute("SELECT schema_version FROM head WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{path}: damaged database ({exc})") from None
    if version is None:
        raise StoreCorruptError(f"{path}: the store's head row is missing")
    if version[0] > SCHEMA_VERSION:
        raise StoreCorruptError(
            f"{path}: store schema {version[0]} is newer than this software ({SCHEMA_VERSION});"
            " upgrade the gateway software"
        )
