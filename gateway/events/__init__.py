"""Event detection from meter counters and records, reported exactly once.

A meter keeps counters (meter-cover opens, terminal-cover opens, power-downs) and its last ten
records of each (record 1 = the most recent, with start and end times).  Status bits only say what
is true *now*: a cover that opened and closed between two polls leaves no bit set, but it moves the
counter and leaves a record.  So detection works from counters and records:

* A counter that grew by ``k`` since the last poll means records 1…k are new (at most ten can be
  read back; more are reported as ``missed`` on the oldest one).
* Every reported record is remembered by its start time (the meter's own), so re-reading records
  never reports one twice, whatever the counter did in between.
* **Open records** (a start but no end yet, e.g. a cover still open): reported at once as
  ``phase = "start"`` (a tamper alarm must not wait for the cover to close), remembered with their
  ordinal, re-read on following sweeps, and reported again with the same ``Event.key`` as
  ``phase = "end"`` when the end appears.  A record complete when first seen is reported once with
  ``phase = "complete"``.  The head-end upserts by ``Event.key`` (meter, type, start).
* The first sweep of a meter sets the baseline and starts a look-back through the records the
  counter already holds, newest first: records that started after the horizon (first contact
  minus ``first_contact_window``, by default the seven days of back-fill) are reported with
  ``first_contact = True`` (a tamper just before the first sweep must not silently become
  history); the first closed record older than the horizon ends it; a record still open is
  reported as ``start`` whatever its age.  The first sweep reads only the newest record; if it
  was news, the next sweep reads the rest the meter keeps (``MeterEventState.scan``).
* A counter that went *down* (events cleared at the meter, or a replacement) resets the baseline.

Other checks, each reported once per excursion (state machines with a flag in the state):

* relay change: status word 3 bit 4 (0 closed, 1 open) differs from the last poll;
* clock drift: |meter − gateway| above ``drift_limit_s`` (level ``sync``) and again above the
  site-visit limit (level ``site_visit``); skipped while the gateway clock is unsynced;
* energy backwards: an import/export total lower than last time, unless a meter replacement is
  known (``identity`` changed, or ``replaced=True``); the new value becomes the baseline;
* reverse energy: export total grew, or status word 1 bit 4 (active power reversed).

State per meter is a JSON-serialisable dict (``MeterEventState.to_json``/``from_json``) kept with
the store's ``set_state``/``get_state``.  Which identifiers a sweep reads: ``SWEEP_IDENTIFIERS``
first, then ``records_to_read(...)`` — records only when a counter changed or a record is open.
"""

from gateway.events.detector import EventDetector
from gateway.events.sweep import (
    COUNT_QUANTITY,
    DEFAULT_DRIFT_LIMIT_S,
    FIRST_CONTACT_WINDOW,
    RECORD_KEY,
    RECORDS_KEPT,
    SITE_VISIT_DRIFT_S,
    SWEEP_IDENTIFIERS,
    Counter,
    MeterEventState,
    OpenRecord,
    PollResult,
    RecordLike,
    poll_from_values,
    record_identifiers,
    records_to_read,
)

__all__ = [
    "COUNT_QUANTITY",
    "DEFAULT_DRIFT_LIMIT_S",
    "FIRST_CONTACT_WINDOW",
    "RECORDS_KEPT",
    "RECORD_KEY",
    "SITE_VISIT_DRIFT_S",
    "SWEEP_IDENTIFIERS",
    "Counter",
    "EventDetector",
    "MeterEventState",
    "OpenRecord",
    "PollResult",
    "RecordLike",
    "poll_from_values",
    "record_identifiers",
    "records_to_read",
]
