"""Prepayment and postpaid billing (远程费控): tariffs, charges, the ledger, payments, reminders,
disconnects and reconnects, bills and late fees.

Modules: ``tariffs`` (definitions) and ``pricing`` (lines); ``charges`` (intervals, pure) and
``charging`` (the charge job, reading validated samples from ``headend.vee``); ``tiers`` (the
per-account tier true-up); ``store`` (accounts, points, the ledger) and ``payments`` (top-ups,
reversals); ``bills`` and ``latefees``; ``reminders`` (the state machine), ``settle`` (one
account), ``disconnect`` (actions through the commands service), ``supply`` (what the meters
report); ``jobs`` (every pass under a lease).  Errors: ``headend.prepay.errors``.
"""
