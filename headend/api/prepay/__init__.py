"""``/api/v1/prepay``: tariffs, accounts and their metering points, top-ups (idempotent by the
payment's external reference), adjustments and fees, ledger and balance, notifications, disconnect
and reconnect actions, bills, and the daily payments reconciliation.

Roles: viewers read (within their area scope); operators take payments; supervisors post
adjustments and fees; admins define tariffs, accounts and points.  An account's area is its
points' area; scoped users see and act on accounts of their areas only.

Modules: ``common`` (roles, bodies, scoping, the account view), ``tariffs``, ``accounts``,
``payments`` (top-ups, reversals, adjustments, the ledger), ``actions`` (notifications,
disconnect/reconnect actions), ``bills`` (bills, reconciliation).
"""

from __future__ import annotations

from fastapi import APIRouter

from headend.api.prepay import accounts, actions, bills, payments, tariffs

router = APIRouter(prefix="/prepay", tags=["prepayment"])
for _module in (tariffs, accounts, payments, actions, bills):
    router.include_router(_module.router)
