"""The web console's exception tree (each becomes an HTML page or a redirect, never a traceback).

::

    WebError
    ├── NotSignedIn     no session cookie, or its token expired or was revoked → 303 to /login
    ├── CsrfRejected    a POST without the matching double-submit token      → 403 page
    └── BadForm         a form field that cannot be used as sent              → 400 page
"""

from __future__ import annotations

from headend.db.errors import HeadendError


class WebError(HeadendError):
    """Base of the web console's own errors."""

    status = 400


class NotSignedIn(WebError):
    """The request carries no valid session: sign in again."""

    status = 401


class CsrfRejected(WebError):
    """The form's CSRF token is missing or does not match the cookie."""

    status = 403


class BadForm(WebError):
    """A form field is missing or malformed; ``str()`` names the field."""

    status = 400
