"""Per-user console preferences stored on the user (``users.language``, ``users.timezone``).

The console reads them on every page (so they follow the user to any browser) and changes them
through ``POST /prefs``; API clients use ``GET``/``PUT /api/v1/me/prefs`` with their token.
A bad language or an unknown zone is refused (422 over the API; the console keeps the previous
value).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, Engine, select, update

from headend.auth.deps import current_user, ops_of
from headend.auth.roles import User
from headend.db import reading, writing
from headend.db.ops_tables import users
from headend.web.session import LANGUAGES, Prefs, valid_zone

router = APIRouter(prefix="/api/v1/me", tags=["users"])
Me = Annotated[User, Depends(current_user)]


def load(engine: Engine, name: str) -> Prefs | None:
    """The stored preferences of ``name`` (None for an unknown user or unusable values)."""
    with reading(engine) as conn:
        row = conn.execute(
            select(users.c.language, users.c.timezone).where(users.c.name == name)
        ).one_or_none()
    if row is None or row.language not in LANGUAGES or not valid_zone(row.timezone):
        return None
    return Prefs(row.language, row.timezone)


def save(conn: Connection, name: str, prefs: Prefs) -> None:
    """Store ``prefs`` for ``name`` (the caller checked the values)."""
    conn.execute(
        update(users).where(users.c.name == name).values(language=prefs.lang, timezone=prefs.zone)
    )


class PrefsBody(BaseModel):
    """The console's language and time zone (IANA name, e.g. ``Asia/Shanghai``)."""

    model_config = ConfigDict(extra="forbid")

    language: Literal["zh", "en"]
    timezone: str = Field(min_length=1, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not valid_zone(value):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai")
        return value


@router.get("/prefs", response_model=PrefsBody)
def get_prefs(request: Request, me: Me) -> PrefsBody:
    """The caller's language and time zone."""
    prefs = load(ops_of(request).engine, me.name) or Prefs()
    return PrefsBody(language=prefs.lang, timezone=prefs.zone)


@router.put("/prefs", response_model=PrefsBody)
def put_prefs(request: Request, body: PrefsBody, me: Me) -> PrefsBody:
    """Change the caller's language and time zone."""
    with writing(ops_of(request).engine) as conn:
        save(conn, me.name, Prefs(body.language, body.timezone))
    return body
