"""``/api/v1/auth``: the OAuth2 password flow (bearer tokens), who am I, change my password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from headend.auth import throttle
from headend.auth import users as user_store
from headend.auth.deps import current_user, ops_of, unauthorized
from headend.auth.http import client_address, http_errors
from headend.auth.login import log_in
from headend.auth.passwords import verify_password
from headend.auth.roles import User
from headend.db import writing
from headend.db.ops_tables import users

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenOut(BaseModel):
    """A bearer token and what it grants."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    role: str
    areas: list[str] | None


class Me(BaseModel):
    name: str
    role: str
    areas: list[str] | None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


def _too_many(refused: throttle.Refused, wall: datetime) -> HTTPException:
    """429 with ``Retry-After`` for a throttled attempt."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        refused.message(wall),
        headers={"Retry-After": str(refused.retry_after(wall))},
    )


@router.post("/token", response_model=TokenOut)
def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    """Log in: exchange a user name and password for a bearer token (failures are audited).

    Throttled per user name and per client address (``[auth.throttle]``): past the free
    failures each attempt waits longer, then the user or address is locked for a while; a
    throttled attempt gets 429 with ``Retry-After`` and its password is not checked.
    """
    ops = ops_of(request)
    outcome = log_in(ops, form.username, form.password, client_address(request))
    if outcome.refused is not None:
        raise _too_many(outcome.refused, ops.wall.now())
    record = outcome.user
    if record is None:
        raise unauthorized("wrong user name or password, or the user is disabled")
    issued, expires = ops.tokens.issue(record.name, record.token_version)
    areas = sorted(record.areas) if record.areas is not None else None
    return TokenOut(access_token=issued, expires_at=expires, role=record.role, areas=areas)


@router.get("/me", response_model=Me)
def me(user: Annotated[User, Depends(current_user)]) -> Me:
    """The authenticated user, role and area scope."""
    return Me(
        name=user.name,
        role=user.role,
        areas=sorted(user.areas) if user.areas is not None else None,
    )


@router.post("/password", status_code=204)
def change_password(
    request: Request, body: PasswordChange, user: Annotated[User, Depends(current_user)]
) -> None:
    """Change one's own password (every earlier token is revoked); wrong current passwords are
    throttled like log-ins (a stolen token cannot be used to guess the password)."""
    ops = ops_of(request)
    now, wall, address = ops.clock.now(), ops.wall.now(), client_address(request)
    with writing(ops.engine) as conn:  # a guess at the current password counts like a log-in
        refused = throttle.admit(conn, ops.throttle, user.name, address, wall)
    if refused is not None:
        raise _too_many(refused, wall)
    with http_errors(), writing(ops.engine) as conn:
        stored = conn.execute(
            select(users.c.password_hash).where(users.c.name == user.name)
        ).scalar_one()
        if not verify_password(stored, body.current):
            throttle.failed(conn, ops.throttle, user.name, address, wall, audit_at=now)
            failed = True
        else:
            throttle.succeeded(conn, user.name, address)
            user_store.change(conn, user.name, actor=user.name, now=now, password=body.new)
            failed = False
    if failed:
        raise unauthorized("the current password is wrong")
