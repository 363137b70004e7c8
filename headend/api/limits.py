"""``BodyLimit``: every request body is bounded before routing, parsing or authentication.

An ASGI middleware in front of the whole app (API, console, static files).  The limit is
``[api] max_body_bytes`` for every path, and ``[api] max_import_bytes`` for the paths listed in
``IMPORT_PATHS`` (bulk imports: the meter CSV).  Two checks, both before the application sees a
byte:

- a ``Content-Length`` above the limit is answered ``413`` at once; the body is never read;
- a body without a length (chunked) or one that runs past its stated length is counted as it
  streams through ``receive``: when the count passes the limit the middleware answers ``413``
  itself and hands the application a client disconnect, so nothing is buffered beyond the
  chunk in hand (uvicorn reads at most ~64 KiB ahead of ``receive``).

A non-numeric or negative ``Content-Length`` is ``400``.  The 413 names the limit, so a client
knows what to split.  Nothing here depends on the user: an unauthenticated client cannot make
the head-end hold more than one limit's worth of any body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

IMPORT_PATHS = ("/api/v1/meters/import",)


def _reply(status: int, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """ASGI middleware bounding request bodies (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        max_import: int | None = None,
        import_paths: Iterable[str] = IMPORT_PATHS,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_import = max_import if max_import is not None else max_body
        self.import_paths = tuple(import_paths)

    def limit_for(self, path: str) -> int:
        """The byte limit of a request to ``path``."""
        return self.max_import if path in self.import_paths else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and declared < 0:
            for message in _reply(400, "Content-Length is not a byte count"):
                await send(message)
            return
        if declared is not None and declared > limit:
            for message in _reply(413, self._too_large(limit)):
                await send(message)
            return
        await _Guarded(self.app, limit, self._too_large(limit))(scope, receive, send)

    @staticmethod
    def _too_large(limit: int) -> str:
        return f"request body larger than {limit} bytes: not accepted here"


class _Guarded:
    """One request whose body is counted as it streams (see ``BodyLimit``)."""

    def __init__(self, app: ASGIApp, limit: int, detail: str) -> None:
        self.app, self.limit, self.detail = app, limit, detail
        self.seen = 0
        self.refused = False
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.seen += len(message.get("body", b""))
                if self.seen > self.limit:
                    self.refused = True
                    if not self.started:
                        self.started = True
                        for reply in _reply(413, self.detail):
                            await send(reply)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.refused:
                return  # the 413 has been sent; the application's answer is dropped
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not self.refused:
                raise
            # the application saw the disconnect we handed it; the client has its 413
