"""Log-in throttling: per user name and per client address, exponential back-off, lockout.

Every log-in attempt (API token or console sign-in) is first *admitted* here, in its own
committed transaction, for two keys: ``addr:<address>`` (an IPv6 address counts as its /64) and
``user:<name>`` (names that do not exist are throttled exactly like real ones, so the answer
reveals nothing).  An attempt is counted *before* its password is checked, so parallel guesses
cannot overtake the counter; a success then clears the user's count and takes back the
address's provisional one.

For one key with ``f`` failures since the last success (forgotten after ``memory_hours`` of
quiet after the last attempt and lockout), with the limits of ``[auth.throttle]`` (user / address)::

    f < free_failures              admitted
    f ≥ free_failures              admitted no sooner than base × 2^(f − free) seconds (capped at
                                   max_backoff_seconds) after the previous attempt
    f ≥ lockout_failures (on a failure)
                                   locked for lockout_minutes × 2^(lockouts so far), at most a
                                   day; every attempt is refused until then, right password or not

Refused attempts are not counted (an attacker cannot extend a lockout by hammering) and are not
audited one by one (that would let them flood the audit log); the start of every lockout is
audited as ``auth.locked`` and every checked wrong password as ``auth.login_failed``
(``headend.auth.users``).  Times are the wall clock, never a simulated one.  An admin lifts a
user's lockout with ``unlock`` (audited ``auth.unlock``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Column, Connection, Index, Integer, String, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from headend import audit
from headend.config import ThrottleSettings
from headend.db import metadata
from headend.db.types import UTCDateTime

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(200), primary_key=True),  # "user:<name>" or "addr:<address>"
    Column("failures", Integer, nullable=False),  # counted attempts since the last success
    Column("lockouts", Integer, nullable=False),  # lockouts in this run of failures
    Column("last_at", UTCDateTime, nullable=False),  # the last counted attempt
    Column("locked_until", UTCDateTime, nullable=True),
    Index("login_throttle_last_at", "last_at"),
)
MAX_LOCKOUT = timedelta(days=1)
Scope = Literal["user", "address"]


@dataclass(frozen=True)
class Refused:
    """An attempt refused without checking its password: which key, why, for how long."""

    scope: Scope
    reason: Literal["locked", "backoff"]
    until: datetime

    def retry_after(self, now: datetime) -> int:
        """Whole seconds to wait (at least 1)."""
        return max(1, int((self.until - now).total_seconds() + 0.999))

    def message(self, now: datetime) -> str:
        who = "this user" if self.scope == "user" else "this address"
        what = "locked" if self.reason == "locked" else "slowed down"
        return (
            f"too many failed log-ins for {who}: {what}; try again in "
            f"{_human(self.retry_after(now))}"
        )


def _human(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"


def address_key(address: str | None) -> str:
    """The throttling key of a client address (an IPv6 address counts as its /64)."""
    if not address:
        return "addr:unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"addr:{address[:100]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


def user_key(name: str) -> str:
    return f"user:{name[:64]}"


def _ensure(conn: Connection, key: str, now: datetime) -> None:
    values = {"key": key, "failures": 0, "lockouts": 0, "last_at": now, "locked_until": None}
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(maker(login_throttle).values(**values).on_conflict_do_nothing())


def _row(conn: Connection, key: str) -> Any:
    query = select(login_throttle).where(login_throttle.c.key == key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def _fresh(row: Any, settings: ThrottleSettings, now: datetime) -> bool:
    """Whether ``row``'s failures are forgotten: quiet for ``memory_hours`` since the last
    attempt *and* since its lockout ended (else a day-long lockout would end forgotten)."""
    since = max(row.last_at, row.locked_until or row.last_at)
    return bool(now - since >= timedelta(hours=settings.memory_hours))


def _verdict(row: Any, scope: Scope, settings: ThrottleSettings, now: datetime) -> Refused | None:
    if _fresh(row, settings, now):
        return None
    if row.locked_until is not None and now < row.locked_until:
        return Refused(scope, "locked", row.locked_until)
    free, _ = settings.limits(scope)
    if row.failures >= free:
        wait = min(
            settings.backoff_seconds * 2 ** min(row.failures - free, 40),
            settings.max_backoff_seconds,
        )
        ready = row.last_at + timedelta(seconds=wait)
        if now < ready:
            return Refused(scope, "backoff", ready)
    return None


def admit(
    conn: Connection, settings: ThrottleSettings, name: str, address: str | None, now: datetime
) -> Refused | None:
    """Count an attempt for ``name`` from ``address``; or the ``Refused`` that stops it."""
    keys: list[tuple[str, Scope]] = [(address_key(address), "address"), (user_key(name), "user")]
    rows = []
    for key, scope in keys:  # always address first, then user: one lock order
        _ensure(conn, key, now)
        row = _row(conn, key)
        refused = _verdict(row, scope, settings, now)
        if refused is not None:
            return refused
        rows.append((key, row))
    for key, row in rows:
        failures = 0 if _fresh(row, settings, now) else row.failures
        lockouts = 0 if _fresh(row, settings, now) else row.lockouts
        conn.execute(
            update(login_throttle)
            .where(login_throttle.c.key == key)
            .values(failures=failures + 1, lockouts=lockouts, last_at=now)
        )
    return None


def failed(
    conn: Connection,
    settings: ThrottleSettings,
    name: str,
    address: str | None,
    now: datetime,
    audit_at: datetime | None = None,
) -> list[Refused]:
    """After a wrong password: start the lockouts now due (audited); returns them."""
    started = []
    for key, scope in ((address_key(address), "address"), (user_key(name), "user")):
        row = conn.execute(select(login_throttle).where(login_throttle.c.key == key)).one_or_none()
        _, lockout = settings.limits(scope)
        if row is None or row.failures < lockout:
            continue
        length = min(timedelta(minutes=settings.lockout_minutes) * 2**row.lockouts, MAX_LOCKOUT)
        until = now + length
        conn.execute(
            update(login_throttle)
            .where(login_throttle.c.key == key)
            .values(locked_until=until, lockouts=row.lockouts + 1)
        )
        audit.append(
            conn,
            "system",
            "auth.locked",
            key[:200],
            {"scope": scope, "failures": row.failures, "until": until.isoformat()},
            at=audit_at or now,
        )
        started.append(Refused(scope, "locked", until))  # type: ignore[arg-type]
    stale = now - timedelta(hours=settings.memory_hours)
    conn.execute(
        delete(login_throttle).where(
            login_throttle.c.last_at < stale,
            (login_throttle.c.locked_until.is_(None)) | (login_throttle.c.locked_until < now),
        )
    )
    return started


def succeeded(conn: Connection, name: str, address: str | None) -> None:
    """After a right password: the user starts afresh; the address's attempt is taken back."""
    conn.execute(delete(login_throttle).where(login_throttle.c.key == user_key(name)))
    c = login_throttle.c
    conn.execute(
        update(login_throttle)
        .where(c.key == address_key(address), c.failures > 0)
        .values(failures=c.failures - 1)
    )


def locked_until(conn: Connection, names: list[str], now: datetime) -> dict[str, datetime]:
    """The users among ``names`` that are locked now, and until when."""
    keys = {user_key(n): n for n in names}
    rows = conn.execute(
        select(login_throttle.c.key, login_throttle.c.locked_until).where(
            login_throttle.c.key.in_(sorted(keys)), login_throttle.c.locked_until > now
        )
    ).all()
    return {keys[r.key]: r.locked_until for r in rows}


def unlock(conn: Connection, name: str, *, actor: str, now: datetime) -> bool:
    """Lift ``name``'s lockout and forget its failures (audited); False if there was none."""
    gone = conn.execute(delete(login_throttle).where(login_throttle.c.key == user_key(name)))
    if gone.rowcount:
        audit.append(conn, actor, "auth.unlock", name, {}, at=now)
    return bool(gone.rowcount)
