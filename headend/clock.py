"""The head-end clock's ``now()`` wherever a request is served: the serving app's clock.

``headend.api.deps.RequestClock`` sets the context variable for each request (it reaches sync
endpoints' worker threads too); outside a request ``now()`` is the wall clock.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime

from taiqu.clock import Clock

request_clock: ContextVar[Clock | None] = ContextVar("taiqu_request_clock", default=None)


def now() -> datetime:
    """The head-end clock's now (``app.state.clock``); the wall clock outside a request."""
    clock = request_clock.get()
    return clock.now() if clock is not None else datetime.now(UTC)
