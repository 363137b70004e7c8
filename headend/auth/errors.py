"""The auth exception tree (see the package docstring)."""

from __future__ import annotations

from headend.db.errors import HeadendError


class AuthError(HeadendError):
    """Base of authentication and authorisation failures."""


class Unauthenticated(AuthError):
    """The caller is not (or no longer) known: missing, bad or expired token; bad password."""


class Forbidden(AuthError):
    """The caller is known but may not do this (role or area scope)."""
