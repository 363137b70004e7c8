"""Disconnect guard rails: a pure policy (``policy``), its settings, and the run-time switches.

``policy.evaluate`` takes the request, the targeted meters' facts, an aware ``now``, the settings,
the run-time state (pause switch, declared extreme-weather days) and the recent counts, and
returns a ``Decision``: allow, needs approval, or refuse naming its rule.  ``store`` reads and
writes the run-time state and counts in the database.
"""

from headend.guards.policy import (
    ALLOW,
    DISCONNECTS,
    Decision,
    GuardState,
    MeterFacts,
    RecentCounts,
    check_window,
    evaluate,
    holiday_name,
)
from headend.guards.settings import GuardSettings

__all__ = [
    "ALLOW",
    "DISCONNECTS",
    "Decision",
    "GuardSettings",
    "GuardState",
    "MeterFacts",
    "RecentCounts",
    "check_window",
    "evaluate",
    "holiday_name",
]
