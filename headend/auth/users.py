"""The user store: create, read, update, disable, authenticate; every change is audited."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from headend import audit
from headend.auth.passwords import hash_password, needs_rehash, rehash, verify_password
from headend.auth.roles import Role, User
from headend.commands.directory import known_areas
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.ops_tables import users

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
UNCHANGED: Any = object()  # ``change(areas=UNCHANGED)`` leaves the scope as it is


@dataclass(frozen=True)
class UserRecord:
    """A stored user (without the password hash)."""

    name: str
    role: Role
    areas: frozenset[str] | None
    disabled: bool
    token_version: int
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @property
    def user(self) -> User:
        return User(self.name, self.role, self.areas)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it."""
        return {
            "name": self.name,
            "role": str(self.role),
            "areas": sorted(self.areas) if self.areas is not None else None,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_login_at": self.last_login_at,
        }


def _record(row: Any) -> UserRecord:
    return UserRecord(
        name=row.name,
        role=Role(row.role),
        areas=frozenset(row.areas) if row.areas is not None else None,
        disabled=bool(row.disabled),
        token_version=int(row.token_version),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


def parse_role(value: str) -> Role:
    """A role by name; ``InvalidRequest`` listing the roles otherwise."""
    try:
        return Role(value)
    except ValueError:
        raise InvalidRequest(
            f"unknown role {value!r}: use one of {', '.join(r.value for r in Role)}"
        ) from None


def _check_areas(
    conn: Connection, role: Role, areas: Iterable[str] | None, now: datetime
) -> list[str] | None:
    if areas is None:
        return None
    wanted = sorted(set(areas))
    if not wanted:
        raise InvalidRequest("an area scope needs at least one area (omit it for every area)")
    if role is Role.ADMIN:
        raise InvalidRequest("admins manage the whole fleet and cannot be scoped to areas")
    unknown = sorted(set(wanted) - known_areas(conn, wanted, now))
    if unknown:
        raise InvalidRequest(f"unknown areas {unknown}: they are not in the meter archive")
    return wanted


def get(conn: Connection, name: str) -> UserRecord:
    """The user ``name``; ``NotFound`` otherwise."""
    row = conn.execute(select(users).where(users.c.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"no user {name!r}")
    return _record(row)


def list_all(conn: Connection) -> list[UserRecord]:
    """Every user, by name."""
    return [_record(r) for r in conn.execute(select(users).order_by(users.c.name))]


def create(
    conn: Connection,
    name: str,
    role: Role | str,
    password: str,
    *,
    areas: Iterable[str] | None = None,
    actor: str,
    now: datetime,
) -> UserRecord:
    """Create a user (audited as ``user.create``)."""
    if not NAME.match(name):
        raise InvalidRequest("user names are 1-64 letters, digits, '_', '.', '@' or '-'")
    role = parse_role(role) if isinstance(role, str) else role
    scope = _check_areas(conn, role, areas, now)
    digest = hash_password(password)
    try:
        with conn.begin_nested():
            conn.execute(
                users.insert().values(
                    name=name,
                    role=role.value,
                    areas=scope,
                    password_hash=digest,
                    token_version=0,
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists") from None
    audit.append(conn, actor, "user.create", name, {"role": role, "areas": scope}, at=now)
    return get(conn, name)


def _active_admins(conn: Connection) -> int:
    query = select(func.count()).where(
        users.c.role == Role.ADMIN.value, users.c.disabled.is_(False)
    )
    return int(conn.execute(query).scalar_one())


def change(
    conn: Connection,
    name: str,
    *,
    actor: str,
    now: datetime,
    role: Role | str | None = None,
    areas: Iterable[str] | None = UNCHANGED,
    password: str | None = None,
    disabled: bool | None = None,
) -> UserRecord:
    """Change a user (``areas=None``: every area; left out: unchanged); audited."""
    current = get(conn, name)
    values: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    new_role = current.role
    if role is not None:
        new_role = parse_role(role) if isinstance(role, str) else role
        values["role"] = detail["role"] = new_role.value
    if areas is not UNCHANGED:
        scope = _check_areas(conn, new_role, areas, now)
        values["areas"] = detail["areas"] = scope
    elif new_role is Role.ADMIN and current.areas is not None:
        raise InvalidRequest("admins cannot be scoped to areas: clear the scope too")
    if password is not None:
        values["password_hash"] = hash_password(password)
        detail["password"] = "changed"
    if disabled is not None:
        values["disabled"] = detail["disabled"] = disabled
    if password is not None or disabled:
        values["token_version"] = current.token_version + 1  # revokes every earlier token
    if not values:
        raise InvalidRequest("nothing to change")
    losing_admin = (
        current.role is Role.ADMIN
        and not current.disabled
        and (new_role is not Role.ADMIN or disabled)
    )
    if losing_admin and _active_admins(conn) <= 1:
        raise Conflict(f"{name!r} is the last active admin: create another admin first")
    conn.execute(update(users).where(users.c.name == name).values(**values, updated_at=now))
    audit.append(conn, actor, "user.change", name, detail, at=now)
    return get(conn, name)


def authenticate(conn: Connection, name: str, password: str, now: datetime) -> UserRecord | None:
    """The user if ``password`` is right and the user enabled; audits success and failure."""
    row = conn.execute(select(users).where(users.c.name == name)).one_or_none()
    stored = row.password_hash if row is not None else None
    ok = verify_password(stored, password)
    if row is None or not ok or row.disabled:
        reason = "unknown user" if row is None else "wrong password" if not ok else "disabled"
        audit.append(
            conn,
            name[:64] or "(empty)",
            "auth.login_failed",
            name[:200],
            {"reason": reason},
            at=now,
        )
        return None
    values: dict[str, Any] = {"last_login_at": now}
    if needs_rehash(row.password_hash):
        values["password_hash"] = rehash(password)
    conn.execute(update(users).where(users.c.id == row.id).values(**values))
    audit.append(conn, name, "auth.login", name, {}, at=now)
    return get(conn, name)
