"""The append-only, hash-chained audit log (who did what, when, to what, with what outcome).

``append(conn, actor, action, subject, detail) -> id`` runs in the caller's transaction;
``verify(conn)`` recomputes the chain and names the first broken row; ``entries`` reads it.
The chain's format is in ``headend.audit.chain``.  Action names are dotted, e.g. ``auth.login``,
``auth.login_failed``, ``user.create``, ``command.create``, ``command.refused``,
``command.approve``, ``command.cancel``, ``guard.pause``, ``archive.meter_update``.
"""

from headend.audit.chain import GENESIS, canonical, row_hash
from headend.audit.log import AuditEntry, Verification, append, count, entries, verify

__all__ = [
    "GENESIS",
    "AuditEntry",
    "Verification",
    "append",
    "canonical",
    "count",
    "entries",
    "row_hash",
    "verify",
]
