"""FastAPI dependencies: ``current_user`` (from the bearer token) and ``require_role(min_role)``.

They read the app's state set by ``headend.app.create_app``: ``engine``, ``settings`` (for
``[auth]``, ``[guards]``, ``[commands]``) and optionally ``clock``.  The token service and the
parsed operations settings are built once per app and cached on its state (``ops``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Engine, select

from headend.auth.errors import Unauthenticated
from headend.auth.roles import Role, User
from headend.auth.tokens import TokenService
from headend.commands.settings import CommandSettings, ops_settings
from headend.config import ThrottleSettings
from headend.db import reading
from headend.db.ops_tables import users
from headend.guards import GuardSettings
from taiqu.clock import Clock, RealClock

TOKEN_URL = "/api/v1/auth/token"
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


@dataclass(frozen=True)
class Ops:
    """What the operations endpoints need, built once per app."""

    engine: Engine
    clock: Clock
    tokens: TokenService
    guards: GuardSettings
    commands: CommandSettings
    throttle: ThrottleSettings
    wall: Clock  # log-in throttling runs on the wall clock (``app.state.wall_clock`` in tests)


def ops_of(request: Request) -> Ops:
    """The app's ``Ops`` (built on first use from ``app.state``)."""
    state = request.app.state
    ops = getattr(state, "ops", None)
    if ops is None:
        settings: Any = state.settings
        guards, commands = ops_settings(settings.extra, settings.source)
        ops = Ops(
            engine=state.engine,
            clock=getattr(state, "clock", None) or RealClock(),
            tokens=TokenService(
                settings.auth.secret(), settings.auth.token_minutes, settings.auth.issuer
            ),
            guards=guards,
            commands=commands,
            throttle=settings.auth.throttle,
            wall=getattr(state, "wall_clock", None) or RealClock(),
        )
        state.ops = ops
    return ops


def unauthorized(message: str) -> HTTPException:
    """A 401 that tells the client to send a bearer token."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


def current_user(request: Request, token: str | None = Depends(bearer)) -> User:
    """The user the bearer token names, as the database says now (401 if none or revoked)."""
    if not token:
        raise unauthorized(f"not authenticated: get a token from {TOKEN_URL}")
    ops = ops_of(request)
    try:
        claims = ops.tokens.check(token)
    except Unauthenticated as exc:
        raise unauthorized(str(exc)) from None
    with reading(ops.engine) as conn:
        row = conn.execute(select(users).where(users.c.name == claims.name)).one_or_none()
    if row is None or row.disabled or row.token_version != claims.version:
        raise unauthorized("the token has been revoked: log in again")
    areas = frozenset(row.areas) if row.areas is not None else None
    return User(row.name, Role(row.role), areas)


def require_role(min_role: Role | str) -> Callable[..., User]:
    """A dependency returning the current user if they have at least ``min_role`` (else 403)."""
    needed = Role(min_role)

    def dependency(user: User = Depends(current_user)) -> User:
        if not user.role.at_least(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {needed} role; {user.name} is a {user.role}",
            )
        return user

    return dependency
