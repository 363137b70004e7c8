"""Area analytics: line loss, theft/tamper suspects and collection quality (docs/analytics.md).

Pure computation lives in ``lineloss``, ``suspects`` and ``collection`` (plain data in, typed
results out); ``repo`` reads facts from and stores results in the database; ``job`` runs the daily
computation; ``headend.api.analytics`` serves it.

Exceptions::

    HeadendError (headend.db.errors)
    └── InvalidRequest
        └── AnalyticsInputError   analytics asked for something that cannot be computed
"""

from __future__ import annotations

from headend.db.errors import InvalidRequest


class AnalyticsInputError(InvalidRequest):
    """An analytics request that cannot be computed as asked (bad range, unknown outcome, …)."""


__all__ = ["AnalyticsInputError"]
