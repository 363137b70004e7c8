"""Reading validation, estimation and editing (VEE) between stored readings and charging.

::

    readings ──► charges.segments ──► vee.validate.screen_point ──► kept samples ──► charges
                                          │  rules (vee.rules): replacement, monotonic,
                                          │  roll-over, plausible_max, spike
                                          ▼
                                      vee_flags (open) ──► operator: accept / correct / reject
                                                            (reason, audited) ──► re-validated

Modules: ``rules`` (pure checks), ``estimate`` (open gaps), ``limits`` (a meter's plausible
maximum and ``[vee]`` settings), ``store`` (failures, resolutions, the queue, contract
capacities), ``validate`` (the charge job's step), ``tables``.  An account with an open failure
on any of its meters is never disconnected automatically (``headend.prepay.disconnect``: rule
``validation``).

Estimation (``estimate``, pure; the charges in ``headend.prepay.estimates``): a gap between two
kept readings needs no estimate (the later one closes it exactly); an open gap is estimated from
the meter's own history, flagged in ``vee_estimates``, charged where ``estimate_charging`` allows,
and trued up when an actual reading arrives.  No disconnect on estimated consumption alone.

Errors are the head-end's (``headend.db.errors``): ``InvalidRequest`` (a decision without a reason,
a correction without a value), ``Conflict`` (deciding a failure that is not open), ``NotFound``.
"""
