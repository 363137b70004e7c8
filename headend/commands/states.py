"""A head-end command's lifecycle (one row in ``commands``, fanned out to one dispatch per
gateway and one target per meter)::

    created ─► awaiting_approval ─► approved ─► sent ─► received ─► executed
        │              │               │          │         │      ├► failed
        └──────────────┴──► approved   │          └─────────┴────► expired
                       └► cancelled ◄──┘                    └► armed ─► executed | failed
                       └► expired  ◄───┘  (valid_until passed before it could be sent)

``armed``: a close-allowed reconnect reached the meter, which now waits for the customer's button;
the gateway reports ``executed`` for that meter when it sees the relay closed (or ``failed`` when a
later relay command supersedes it).  It is not final, and nothing expires it: the meter stays armed.
A command (or dispatch) is ``armed`` when every target is final or armed and at least one is armed.

``created`` is the instant of the request (``created_at``); the guard rails then send it to
``awaiting_approval`` (a supervisor must approve) or straight to ``approved``.  The dispatcher
publishes ``approved`` dispatches (claiming each first) and marks them ``sent``; the gateway's
``up/result`` messages move targets to ``received`` and to a final state.  A command is final when
every target is: ``executed`` if all executed, ``expired`` if none did and some expired, else
``failed``.  Cancelling is possible until the command is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from protocols.uplink import CommandState


class State(StrEnum):
    """States of commands, dispatches and targets (dispatches add ``sending``)."""

    CREATED = "created"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SENDING = "sending"  # a dispatcher has claimed the dispatch and is publishing it
    SENT = "sent"
    RECEIVED = "received"
    ARMED = "armed"  # close allowed: the meter waits for the customer's button
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({State.EXECUTED, State.FAILED, State.EXPIRED, State.CANCELLED})
CANCELLABLE = frozenset({State.AWAITING_APPROVAL, State.APPROVED})

# A gateway's final report for a meter, as the target's state.
FROM_GATEWAY: dict[CommandState, State] = {
    CommandState.RECEIVED: State.RECEIVED,
    CommandState.EXECUTING: State.RECEIVED,
    CommandState.EXECUTED: State.EXECUTED,
    CommandState.ARMED: State.ARMED,  # close allowed: executed when the customer presses
    CommandState.FAILED: State.FAILED,
    CommandState.REFUSED: State.FAILED,
    CommandState.EXPIRED: State.EXPIRED,
}


def waiting(states: Iterable[State]) -> bool:
    """Whether a set of target states is done but for meters armed for the customer's button."""
    states = list(states)
    return State.ARMED in states and all(s.final or s is State.ARMED for s in states)


def overall(states: Iterable[State]) -> State | None:
    """The final state of a set of target states, or None while any is still open."""
    states = list(states)
    if not states or not all(s.final for s in states):
        return None
    if all(s is State.EXECUTED for s in states):
        return State.EXECUTED
    if all(s is State.CANCELLED for s in states):
        return State.CANCELLED
    if not any(s is State.EXECUTED for s in states) and any(s is State.EXPIRED for s in states):
        return State.EXPIRED
    return State.FAILED
