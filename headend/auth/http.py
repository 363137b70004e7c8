"""Turning the head-end's errors and refusals into HTTP answers (4xx with a clear message)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, Request, status

from headend.auth.errors import Forbidden, Unauthenticated
from headend.db.errors import ConfigError, Conflict, InvalidRequest, NotFound

STATUS: list[tuple[type[Exception], int]] = [
    (Unauthenticated, status.HTTP_401_UNAUTHORIZED),
    (Forbidden, status.HTTP_403_FORBIDDEN),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (InvalidRequest, status.HTTP_400_BAD_REQUEST),  # as headend.app maps it
    (ConfigError, status.HTTP_503_SERVICE_UNAVAILABLE),
]


@contextmanager
def http_errors() -> Iterator[None]:
    """Re-raise the head-end's typed errors as ``HTTPException`` with their message."""
    try:
        yield
    except tuple(cls for cls, _ in STATUS) as exc:
        code = next(code for cls, code in STATUS if isinstance(exc, cls))
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        raise HTTPException(code, str(exc), headers=headers) from None


def refused(rule: str, message: str, kind: str, **extra: Any) -> HTTPException:
    """A refusal: 403 (role, scope, second user) or 409 (guard rail, state), naming its rule."""
    code = status.HTTP_403_FORBIDDEN if kind == "forbidden" else status.HTTP_409_CONFLICT
    return HTTPException(code, {"rule": rule, "message": message, **extra})


def client_address(request: Request) -> str | None:
    """The peer address of ``request`` (what log-ins are throttled by; see docs/security.md)."""
    return request.client.host if request.client is not None else None
