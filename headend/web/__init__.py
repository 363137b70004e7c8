"""The operator web console: server-rendered pages (Jinja2), a little htmx, uPlot charts.

``router`` holds every page and the static assets; the app factory includes it with
``app.include_router(headend.web.router)`` (no prefix: pages live at ``/``, ``/areas/…``,
``/meters/…``, ``/commands``, ``/audit``, ``/notifications``, ``/validation``, ``/accounts/…``,
``/login``;
assets under ``/static/``).  Pages act through the same services and scope rules as
``/api/v1``; the session is the API's bearer token in an HttpOnly cookie (see
``headend.web.session``).
"""

from fastapi import APIRouter

from headend.web.pages import accounts, auth, commands, fleet, logs, meters, static, validation

router = APIRouter(include_in_schema=False)
# meters' /commands/new first
for _module in (static, auth, fleet, meters, commands, logs, validation, accounts):
    router.include_router(_module.router)

__all__ = ["router"]
