"""The dispatcher's ``publish``: through ``mqtt_outbox`` and the ingest's one MQTT connection.

The head-end has one broker identity (``use_username_as_clientid``: a second connection under the
same name would throw the ingest off), so commands leave through the ingest's connection: this
publisher writes the message to ``mqtt_outbox`` in its own transaction, then waits until the
ingest (in this process or another) has published it *and* marked it published, which it does
only after the broker's PUBACK.  Only then does ``publish`` return and the dispatcher mark the
dispatch ``sent``, so "sent" means the broker holds it.

If the broker does not confirm within ``timeout`` seconds, ``publish`` raises ``NotConfirmed``
(the dispatcher puts the dispatch back to ``approved`` with the reason) but the queued row stays:
a retry of the same command id waits for that row instead of queuing a second copy.  While the
broker is unconfirmed, further calls wait only briefly, so one pass over many dispatches does not
take ``timeout`` each.  A copy published twice after all (a restart in between) is harmless: the
gateway refuses a repeated command id as ``duplicate``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from headend.db import reading, writing
from headend.db.errors import StorageError
from headend.db.tables import mqtt_outbox
from headend.ingest import outbox
from taiqu.clock import Clock


class NotConfirmed(StorageError):
    """The broker has not (yet) confirmed a queued command."""


@dataclass
class OutboxPublisher:
    """``publish(topic, payload)`` that returns once the broker has the message (see module)."""

    engine: Engine
    clock: Clock
    timeout: float = 10.0  # wall seconds to wait for the broker's confirmation
    poll: float = 0.05
    stop: threading.Event = field(default_factory=threading.Event)
    _queued: dict[str, int] = field(default_factory=dict)  # command id → outbox id
    _stalled: bool = False

    def __call__(self, topic: str, payload: bytes) -> None:
        key = _command_id(topic, payload)
        row_id = self._queued.get(key)
        if row_id is None:
            with writing(self.engine) as conn:
                row_id = outbox.enqueue(conn, topic, payload, self.clock.now())
            self._queued[key] = row_id
        if not self._wait(row_id, self.poll * 4 if self._stalled else self.timeout):
            self._stalled = True
            raise NotConfirmed("queued; the broker has not confirmed it yet (is the ingest up?)")
        self._stalled = False
        self._queued.pop(key, None)

    def _wait(self, row_id: int, limit: float) -> bool:
        deadline = time.monotonic() + limit
        query = select(mqtt_outbox.c.published_at).where(mqtt_outbox.c.id == row_id)
        while True:
            with reading(self.engine) as conn:
                if conn.execute(query).scalar() is not None:
                    return True
            if time.monotonic() >= deadline or self.stop.wait(self.poll):
                return False


def _command_id(topic: str, payload: bytes) -> str:
    try:
        return f"{topic} {json.loads(payload)['id']}"
    except (ValueError, KeyError, TypeError):
        return f"{topic} {hash(payload)}"
