"""``/api/v1/users``: user management (admins only); users are disabled, never deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from headend.auth import throttle
from headend.auth import users as user_store
from headend.auth.deps import ops_of, require_role
from headend.auth.http import http_errors
from headend.auth.roles import Role, User
from headend.db import reading, writing

router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]


class UserOut(BaseModel):
    name: str
    role: Role
    areas: list[str] | None
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None = None  # log-ins refused until then (headend.auth.throttle)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(max_length=1024)
    areas: list[str] | None = Field(default=None, max_length=1000)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    areas: list[str] | None = Field(default=None, max_length=1000)
    password: str | None = Field(default=None, max_length=1024)
    disabled: bool | None = None


@router.get("", response_model=list[UserOut])
def list_users(request: Request, admin: Admin) -> list[dict[str, Any]]:
    """Every user."""
    ops = ops_of(request)
    with reading(ops.engine) as conn:
        records = user_store.list_all(conn)
        locked = throttle.locked_until(conn, [u.name for u in records], ops.wall.now())
    return [{**u.public(), "locked_until": locked.get(u.name)} for u in records]


@router.post("", response_model=UserOut, status_code=201)
def create_user(request: Request, body: UserIn, admin: Admin) -> dict[str, Any]:
    """Create a user with a role and, optionally, an area scope."""
    ops = ops_of(request)
    with http_errors(), writing(ops.engine) as conn:
        record = user_store.create(
            conn,
            body.name,
            body.role,
            body.password,
            areas=body.areas,
            actor=admin.name,
            now=ops.clock.now(),
        )
    return record.public()


@router.get("/{name}", response_model=UserOut)
def get_user(request: Request, name: str, admin: Admin) -> dict[str, Any]:
    """One user."""
    ops = ops_of(request)
    with http_errors(), reading(ops.engine) as conn:
        record = user_store.get(conn, name)
        locked = throttle.locked_until(conn, [name], ops.wall.now())
    return {**record.public(), "locked_until": locked.get(name)}


@router.post("/{name}/unlock", status_code=204)
def unlock_user(request: Request, name: str, admin: Admin) -> None:
    """Lift a log-in lockout and forget the user's failed attempts (audited)."""
    ops = ops_of(request)
    with http_errors(), writing(ops.engine) as conn:
        user_store.get(conn, name)
        throttle.unlock(conn, name, actor=admin.name, now=ops.clock.now())


@router.patch("/{name}", response_model=UserOut)
def change_user(request: Request, name: str, body: UserPatch, admin: Admin) -> dict[str, Any]:
    """Change role, scope (``"areas": null`` clears it), password or disabled."""
    ops = ops_of(request)
    sent = body.model_fields_set
    with http_errors(), writing(ops.engine) as conn:
        record = user_store.change(
            conn,
            name,
            actor=admin.name,
            now=ops.clock.now(),
            role=body.role,
            areas=body.areas if "areas" in sent else user_store.UNCHANGED,
            password=body.password,
            disabled=body.disabled,
        )
    return record.public()


@router.delete("/{name}", response_model=UserOut)
def disable_user(request: Request, name: str, admin: Admin) -> dict[str, Any]:
    """Disable a user (kept for the audit trail; their tokens stop working at once)."""
    ops = ops_of(request)
    with http_errors(), writing(ops.engine) as conn:
        record = user_store.change(conn, name, actor=admin.name, now=ops.clock.now(), disabled=True)
    return record.public()
