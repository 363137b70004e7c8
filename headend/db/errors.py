"""The head-end's exception tree (raised by the data layer and domain services; the API maps it).

::

    HeadendError
    ├── ConfigError        the configuration file cannot be used (headend.config)
    ├── NotFound           an id that does not exist                         → 404
    ├── Conflict           a write that contradicts stored state             → 409
    ├── InvalidRequest     a request that cannot be carried out as asked     → 400/422
    └── StorageError       the database failed or its schema is not ours     → 503
"""

from __future__ import annotations


class HeadendError(Exception):
    """Base of every error the head-end raises on purpose."""


class ConfigError(HeadendError):
    """The configuration cannot be used; ``str()`` names the file, the key and the fix."""


class NotFound(HeadendError):
    """The named object does not exist."""


class Conflict(HeadendError):
    """The write contradicts stored state (duplicate id, overlapping validity, …)."""


class InvalidRequest(HeadendError):
    """The request is well-formed but cannot be carried out as asked."""


class StorageError(HeadendError):
    """The database failed, or its schema is newer than this software."""
