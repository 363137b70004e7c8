"""One log-in, as the API's token endpoint and the console's sign-in both do it.

Throttle first (``headend.auth.throttle``: the attempt is counted in its own transaction before
the password is checked), then check the password (``headend.auth.users.authenticate``, which
audits), then settle the counters in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.auth import throttle
from headend.auth import users as user_store
from headend.auth.deps import Ops
from headend.auth.passwords import MAX_LENGTH
from headend.db import writing


@dataclass(frozen=True)
class LoginOutcome:
    """A user (signed in), or ``refused`` (throttled: the password was not checked), or neither
    (wrong name or password, or a disabled user)."""

    user: user_store.UserRecord | None = None
    refused: throttle.Refused | None = None
    lockouts: tuple[throttle.Refused, ...] = ()


def log_in(ops: Ops, name: str, password: str, address: str | None) -> LoginOutcome:
    """Check ``name``/``password`` from ``address`` under the log-in throttle."""
    wall, settings = ops.wall.now(), ops.throttle
    with writing(ops.engine) as conn:
        refused = throttle.admit(conn, settings, name, address, wall)
    if refused is not None:
        return LoginOutcome(refused=refused)
    now = ops.clock.now()
    with writing(ops.engine) as conn:
        record = None
        if password and len(password) <= MAX_LENGTH:
            record = user_store.authenticate(conn, name[:64], password, now)
        if record is not None:
            throttle.succeeded(conn, name, address)
            return LoginOutcome(user=record)
        started = throttle.failed(conn, settings, name, address, wall, audit_at=now)
    return LoginOutcome(lockouts=tuple(started))
