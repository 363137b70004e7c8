"""Static assets (CSS, the console's JS, vendored htmx and uPlot) from ``headend/web/static``.

Served by a route rather than a mount so that including ``headend.web.router`` is enough; only
files that exist under the directory are served, with a day of caching (names carry versions).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, Response

router = APIRouter()
ROOT = Path(__file__).resolve().parent.parent / "static"
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}


@router.get("/static/{path:path}")
def asset(path: str) -> Response:
    """One file under the static directory (404 for anything else, including ``..``)."""
    target = (ROOT / path).resolve()
    if not target.is_file() or ROOT not in target.parents:
        return PlainTextResponse("not found", status_code=404)
    media = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "text/plain"
    return FileResponse(
        target,
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
