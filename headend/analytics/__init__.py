"""Area analytics: line loss, theft/tamper suspects and collection quality (docs/analytics.md).

Pure computation lives in ``lineloss`` (two-way energy, bands), ``passrate``, ``suspects``,
``intervals`` (evidence from interval readings), ``membership`` (户变关系 from voltages) and
``collection`` (plain data in, typed results out); ``repo`` reads facts from the database and
``store`` writes results; ``service`` recomputes; ``job`` runs the daily computation;
``headend.api.analytics`` and ``headend.api.membership`` serve it.

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
