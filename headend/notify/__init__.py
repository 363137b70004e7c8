"""Customer and operator notifications through ``apprise`` (SMS gateways, e-mail, webhooks …).

``outbox.queue`` records a notification (one row per target URL, unique by a dedupe key) in the
caller's transaction; ``outbox.deliver_due`` sends what is due (after quiet hours, after a retry's
back-off) and logs each attempt's outcome on the row: ``pending`` → ``sent``, or after the
configured retries ``failed`` with the last error.  Templates are in Chinese and English
(``templates``).

Exceptions::

    HeadendError
    └── InvalidRequest
        └── NotifyError        an unknown template or an apprise URL that cannot be used
"""

from __future__ import annotations

from headend.db.errors import InvalidRequest


class NotifyError(InvalidRequest):
    """An unknown template, a missing field, or an apprise URL apprise cannot use."""


__all__ = ["NotifyError"]
