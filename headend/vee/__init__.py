"""Reading validation, estimation and editing (VEE) between stored readings and charging.

::

    readings ──► charges.segments ──► vee.validate.screen_point ──► kept samples ──► charges
                                          │  rules (vee.rules): replacement, monotonic,
                                          │  roll-over, plausible_max, spike
                                          ▼
                                      vee_flags (open) ──► operator: accept / correct / reject
                                                            (reason, audited) ──► re-validated

Modules: ``rules`` (pure checks), ``limits`` (a meter's plausible maximum and ``[vee]`` settings),
``store`` (failures, resolutions, the queue, contract capacities), ``validate`` (the charge job's
step), ``tables``.  An account with an open failure on any of its meters is never disconnected
automatically (``headend.prepay.disconnect``: rule ``validation``).

Estimation: charging works on cumulative registers, so a gap needs no estimate — the next kept
reading closes the interval with the exact energy (the true-up is implicit).  No estimated value
is ever charged.

Errors are the head-end's (``headend.db.errors``): ``InvalidRequest`` (a decision without a reason,
a correction without a value), ``Conflict`` (deciding a failure that is not open), ``NotFound``.
"""
