"""One ingest per MQTT client id: a lease held for the life of the process.

Two processes with one client id would take the broker session from each other in turn.  On
PostgreSQL the lease is a session-level advisory lock on a dedicated connection; on SQLite an
exclusive ``flock`` on a file beside the database.  Either is released by the OS or the server
when the process dies, so a kill -9 never leaves a stale lease.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from headend.db.errors import Conflict


def _key(client_id: str) -> int:
    return int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:8], "big", signed=True)


class IngestLease:
    """Held while an ingest with ``client_id`` runs against ``engine``'s database."""

    def __init__(self, engine: Engine, client_id: str) -> None:
        self.engine = engine
        self.client_id = client_id
        self._conn: Connection | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lease or raise ``Conflict`` naming the client id."""
        taken = Conflict(
            f"another ingest with MQTT client id {self.client_id!r} is running on this database"
        )
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(self.client_id)})
            conn.commit()
            if not got.scalar_one():
                conn.close()
                raise taken
            self._conn = conn
            return
        database = self.engine.url.database or ""
        base = Path(database) if database and database != ":memory:" else Path.cwd() / "memory"
        path = base.with_name(f"{base.name}.ingest-{self.client_id}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise taken from None
        self._fd = fd

    def release(self) -> None:
        if self._conn is not None:
            # the pool keeps the session alive after close(): unlock explicitly
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(self.client_id)})
            self._conn.commit()
            self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> IngestLease:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
