"""Prepayment and postpaid billing (远程费控): tariffs, charges, the ledger, payments, reminders,
disconnects and reconnects, bills and late fees.

Modules: ``tariffs`` (definitions) and ``pricing`` (lines); ``charges`` (intervals, pure) and
``charging`` (the charge job, reading validated samples from ``headend.vee``); ``estimates``
(open gaps estimated and trued up, VEE's E); ``tiers`` (the per-account tier true-up);
``accounts`` (accounts and their points), ``store`` (tariffs, the ledger; re-exports
``accounts``) and ``payments`` (top-ups, reversals); ``bills`` and ``latefees``; ``reminders``
(the state machine), ``settle`` (one account), ``disconnect`` (actions through the commands
service), ``windows`` (when actions and notices may happen), ``supply`` (what the meters report);
``overview`` (what an account page shows); ``jobs`` (every pass under a lease).  Errors:
``headend.prepay.errors``.
"""
