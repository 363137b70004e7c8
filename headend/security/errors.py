"""Errors of the head-end's security tooling (keys, signing, gateway enrolment).

::

    HeadendError (headend.db.errors)
    └── SecurityError
        ├── KeyStoreError     the key directory or a key file cannot be used (path, reason, fix)
        └── EnrolmentError    a gateway cannot be enrolled (bad id, already enrolled, tool missing)
"""

from __future__ import annotations

from headend.db.errors import HeadendError


class SecurityError(HeadendError):
    """Base of the security tooling's errors."""


class KeyStoreError(SecurityError):
    """The key directory or a key file cannot be used; ``str()`` names the path and the fix."""


class EnrolmentError(SecurityError):
    """A gateway cannot be enrolled as asked."""
