"""The prepayment package's exceptions (each also a head-end error the API maps to a status).

::

    HeadendError (headend.db.errors)
    ├── InvalidRequest
    │   ├── TariffError        a tariff or split definition that cannot be used   → 400
    │   ├── MoneyError         an amount that is not money in the ledger currency → 400
    │   └── ChargeError        readings that cannot be charged as asked            → 400
    ├── Conflict
    │   └── PaymentConflict    an external reference reused with other content    → 409
    └── ConfigError
        └── (``[prepay]`` settings errors are ConfigError naming the key)
"""

from __future__ import annotations

from headend.db.errors import Conflict, InvalidRequest


class TariffError(InvalidRequest):
    """A tariff or split definition that cannot be used; ``str()`` names the field."""


class MoneyError(InvalidRequest):
    """An amount that is not a valid sum of money for the ledger."""


class ChargeError(InvalidRequest):
    """Readings or a replacement record that cannot be charged."""


class PaymentConflict(Conflict):
    """A payment's external reference was already used for a different payment."""
