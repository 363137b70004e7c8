"""Dependencies every router shares: database connections, the user, paging and time checks.

Authentication comes from ``headend.auth.deps`` (``current_user``, ``require_role``).
Read endpoints depend on ``viewer`` and filter by ``user.areas``; archive writes on ``admin``.
"Now" is the app's clock (``app.state.clock``): ``now()`` inside a request (``RequestClock``
middleware), or the ``Now`` dependency.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import Connection, Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from headend.archive.push import archive_signer
from headend.auth.deps import current_user, require_role
from headend.clock import now, request_clock
from headend.config import Settings
from headend.db.engine import reading, writing
from headend.db.errors import InvalidRequest

log = logging.getLogger(__name__)
__all__ = [
    "Admin",
    "Now",
    "ReadConn",
    "Viewer",
    "WriteConn",
    "current_user",
    "now",
    "require_role",
]

viewer = require_role("viewer")
operator = require_role("operator")
admin = require_role("admin")
Viewer = Annotated[Any, Depends(viewer)]
Admin = Annotated[Any, Depends(admin)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def read_conn(engine: Engine = Depends(get_engine)) -> Iterator[Connection]:
    """One consistent snapshot for the request."""
    with reading(engine) as conn:
        yield conn


def write_conn(engine: Engine = Depends(get_engine)) -> Iterator[Connection]:
    """One write transaction for the request (committed when the endpoint returns)."""
    with writing(engine) as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(read_conn)]
WriteConn = Annotated[Connection, Depends(write_conn)]


class RequestClock:
    """ASGI middleware: during a request, ``now()`` reads the serving app's ``state.clock``.

    Routers call ``now()`` for default ``?at=``/``valid_from`` and for resolution times; the
    context variable carries the app's clock there (into sync endpoints' worker threads too).
    Likewise the app's archive signer (``state.archive_signer``) for the archive pushes that
    archive changes issue (``headend.archive.push.archive_signer``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = scope.get("app")
        clock = getattr(getattr(served, "state", None), "clock", None)
        signer = getattr(getattr(served, "state", None), "archive_signer", None)
        token = request_clock.set(clock)
        signing = archive_signer.set(signer)
        try:
            await self.app(scope, receive, send)
        finally:
            archive_signer.reset(signing)
            request_clock.reset(token)


def request_now(request: Request) -> datetime:
    """``now()`` as a dependency: the clock of the app serving ``request``."""
    return request.app.state.clock.now()  # type: ignore[no-any-return]


Now = Annotated[datetime, Depends(request_now)]


def aware(value: datetime | None, name: str) -> datetime | None:
    """Refuse naive times in queries (every time in Taiqu is an instant)."""
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{name}: give a time zone, e.g. 2026-11-24T00:00:00+08:00 or …Z")
    return value


def check_range(start: datetime | None, end: datetime | None) -> None:
    aware(start, "from")
    aware(end, "to")
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("'to' must be after 'from'")


def user_areas(user: Any) -> frozenset[str] | None:
    """The areas a user may see (None: all)."""
    areas = getattr(user, "areas", None)
    return None if areas is None else frozenset(areas)


def require_area(user: Any, area: str | None) -> None:
    """Forbid objects outside the user's area scope."""
    scope = user_areas(user)
    if scope is not None and area not in scope:
        raise OutOfScope(f"{user.name} is scoped to other areas than {area or '(none)'}")


class OutOfScope(InvalidRequest):
    """The object is outside the user's area scope (→ 403)."""


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor this API returned") from None
    if len(parts) != n:
        raise InvalidRequest("cursor: not a cursor this API returned")
    return parts


Limit = Annotated[int, Query(ge=1, le=10_000, description="page size")]
