"""Store one contract message inside the caller's transaction; say what to publish after commit.

``Ingestor.handle`` runs one message through a fixed sequence of steps:

0. **authenticate** — the payload must carry the gateway's signature when the gateway has a
   registered key (``headend.ingest.keys``; the policy decides for gateways without one); a
   refused one → ``dead_letters`` with ``signature: <reason>``, before anything is decoded,
   a stream touched or a command looked up;
1. **decode and validate** — ``up/data`` with ``protocols.uplink.decode_data`` (sweeps stay
   column arrays, checked a column at a time), other kinds with ``decode_message``; anything
   that fails the contract → ``dead_letters`` (topic, reason, raw bytes);
2. **bind and route** — the gateway's stream is locked and read (``StreamBook.get``), and the
   seqs it already holds are set aside as duplicates, and readings and events of meters that were
   not the gateway's own at their time (``MeterRegistry.ownership``, effective-dated) are set
   aside for ``unregistered``;
3. **write** — ``up/data``: the new records' readings go to the transaction's ``ReadingSink``
   (written by one COPY / executemany per group, before commit), events and announced gaps
   (``gaps`` plus a ``gap_announced`` event) are inserted, unregistered meters noted, the
   stream's new runs recorded; ``up/status`` → ``gateway_state`` and, on a change of state, a
   ``gateway_sessions`` row; ``up/result`` → ``headend.commands.ingest.on_result``;
4. **ack** — the ``Outcome`` lists the contract ``Ack`` and any ``ResendRequest`` to publish.

The caller flushes the sink, commits, then acknowledges the message to the broker (PUBACK), then
publishes.  On rollback it must call ``rolled_back()`` (the stream cache is reloaded).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select, update

from headend.commands.ingest import on_result
from headend.db.bulk import ReadingSink
from headend.db.dialect import insert_ignore
from headend.db.tables import dead_letters, events, gaps, gateway_sessions, gateway_state
from headend.ingest import presence
from headend.ingest.keys import GatewayKeys
from headend.ingest.ranges import SeqRanges
from headend.ingest.registry import MeterRegistry, Ownership
from headend.ingest.rows import event_row, gap_rows, record_rows, sweep_rows
from headend.ingest.streams import StreamBook
from protocols.errors import ContractError
from protocols.uplink import (
    CommandResult,
    EventRecord,
    GapRecord,
    ReadingRecord,
    Status,
    Topics,
    decode_message,
    encode,
)
from protocols.uplink.columns import DataBatch, decode_data
from protocols.uplink.topics import parse_topic

log = logging.getLogger(__name__)
DEAD_PREFIX = 64 * 1024  # bytes of a dead letter kept (length and hash say what the rest was)
DEAD_PER_MINUTE = 60  # dead letters kept per gateway and minute
DEAD_TOTAL_PER_MINUTE = 600  # … and in all (a broker attacker can invent any number of gateways)


@dataclass
class Outcome:
    """What one message did, and what to publish once it is committed."""

    kind: str  # data | status | result | dead | ignored
    gateway: str | None = None
    publish: list[tuple[str, bytes]] = field(default_factory=list)
    records: int = 0
    readings: int = 0
    duplicates: int = 0
    reason: str | None = None


class Ingestor:
    """Writes decoded messages; holds the stream cache and the meter registry."""

    def __init__(
        self,
        resend_after: float = 10.0,
        max_resend_ranges: int = 8,
        streams: StreamBook | None = None,
        dead_prefix: int = DEAD_PREFIX,
        dead_per_minute: int = DEAD_PER_MINUTE,
        keys: GatewayKeys | None = None,
        dead_total_per_minute: int = DEAD_TOTAL_PER_MINUTE,
    ) -> None:
        self.keys = keys if keys is not None else GatewayKeys()
        self.streams = streams if streams is not None else StreamBook()
        self.dead_prefix = dead_prefix
        self.dead_per_minute = dead_per_minute
        self.dead_total_per_minute = dead_total_per_minute
        self._dead: dict[str | None, list[float]] = {}  # gateway → [window start, kept, dropped]
        self.registry = MeterRegistry()
        self.resend_after = resend_after
        self.max_resend_ranges = max_resend_ranges
        self.on_result = on_result  # replaceable in tests

    def rolled_back(self) -> None:
        """Forget cached state written by a transaction that did not commit."""
        self.streams.invalidate()
        self.registry.invalidate()
        self.keys.invalidate()

    def handle(
        self,
        conn: Connection,
        topic: str,
        payload: bytes,
        now: datetime,
        retained: bool = False,
        sink: ReadingSink | None = None,
    ) -> Outcome:
        """Store one message (in ``conn``'s transaction).

        Readings go to ``sink``, which the caller flushes before commit; without one they are
        written before this returns.
        """
        own = sink is None
        sink = sink if sink is not None else ReadingSink(conn)
        try:  # step 0: authenticate; step 1: decode and validate
            body = self.keys.authentic(conn, parse_topic(topic)[0], topic, payload)
            gateway, message = self._decode(topic, body)
        except ContractError as exc:
            return self.dead_letter(conn, topic, payload, str(exc), now)
        # steps 2-4 (bind and route, write, ack) per kind
        if isinstance(message, DataBatch | CommandResult):
            presence.touch(conn, gateway, now)  # any message says the gateway is alive
        if isinstance(message, DataBatch):
            outcome = self._data(conn, gateway, message, now, sink)
            if own:
                sink.flush()
            return outcome
        if isinstance(message, Status):
            return self._status(conn, gateway, message, now, retained)
        if isinstance(message, CommandResult):
            if self.on_result is not None:
                self.on_result(conn, gateway, message)
            else:
                log.info("command result %s from %s (no command module)", message.id, gateway)
            return Outcome("result", gateway)
        return Outcome("ignored", gateway)  # pragma: no cover  (up kinds are the three above)

    @staticmethod
    def _decode(topic: str, payload: bytes) -> tuple[str, DataBatch | BaseModel]:
        """Step 1: the message, validated against the contract (``ContractError``)."""
        gateway, direction, kind = parse_topic(topic)
        message: DataBatch | BaseModel
        if kind == "data":
            message = decode_data(gateway, payload)
        else:
            message = decode_message(topic, payload)[2]
        if direction != "up":
            raise ContractError(f"head-end does not accept {kind!r} messages")
        return gateway, message

    def dead_letter(
        self, conn: Connection, topic: str, payload: bytes, reason: str, now: datetime
    ) -> Outcome:
        """Keep a message that cannot be used: the reason, its length and SHA-256, and at most
        ``dead_prefix`` of its bytes; at most ``dead_per_minute`` a minute per gateway and
        ``dead_total_per_minute`` in all (the rest are counted and logged, so a flood of garbage,
        even on topics of invented gateways, cannot fill the database or this process)."""
        try:
            gateway: str | None = parse_topic(topic)[0]
        except ContractError:
            gateway = None
        now_m = time.monotonic()
        total = self._dead.setdefault("*", [now_m, 0, 0])  # "*" is never a gateway id
        if now_m - total[0] >= 60:  # a new minute: forget every window that has ended
            for key, old in list(self._dead.items()):
                if now_m - old[0] >= 60:
                    if old[2]:
                        log.warning("dead letters of %s: %d more not kept in the last minute",
                                    key, int(old[2]))  # fmt: skip
                    del self._dead[key]
            total = self._dead.setdefault("*", [now_m, 0, 0])
        window = self._dead.setdefault(gateway, [now_m, 0, 0])
        if now_m - window[0] >= 60:
            if window[2]:
                log.warning("dead letters of %s: %d more not kept in the last minute",
                            gateway, int(window[2]))  # fmt: skip
            window[:] = [now_m, 0, 0]
        if window[1] >= self.dead_per_minute or total[1] >= self.dead_total_per_minute:
            window[2] += 1
            total[2] += 1
            return Outcome("dead", gateway, reason=reason)
        window[1] += 1
        total[1] += 1
        raw = bytes(payload[: self.dead_prefix])
        if len(payload) > len(raw):
            digest = hashlib.sha256(payload).hexdigest()
            reason = f"{reason} [{len(payload)} bytes, sha256 {digest}, first {len(raw)} kept]"
        conn.execute(
            insert(dead_letters).values(
                topic=topic[:300],
                gateway=gateway,
                reason=reason[:1000],
                payload=raw,
                received=now,
            )
        )
        log.warning("dead letter on %s: %s", topic, reason[:300])
        return Outcome("dead", gateway, reason=reason)

    # --- up/data ------------------------------------------------------------------------------

    def _data(
        self, conn: Connection, gateway: str, batch: DataBatch, now: datetime, sink: ReadingSink
    ) -> Outcome:
        # step 2: the stream, locked; the seqs it does not hold yet are the new records
        stream = self.streams.get(conn, gateway, batch.epoch, batch.seq)
        runs = stream.held.missing(batch.seq, batch.last_seq)
        new = SeqRanges(runs)
        owned = self.registry.ownership(conn, gateway)  # a gateway writes only its own meters
        bound = _Binding(self.registry, conn, owned)
        # step 3: write the new records
        readings = 0
        for sweep in batch.sweeps:
            first = batch.seq + sweep.index
            whole = new.covers(first, first + len(sweep) - 1)
            keep: range | list[int]
            if owned.covers(sweep.meters, sweep.gateway_times):  # the usual case: all its own
                keep = (
                    range(len(sweep))
                    if whole
                    else [i for i in range(len(sweep)) if first + i in new]
                )
            else:
                meters_, times = sweep.meters, sweep.gateway_times
                keep = [
                    i
                    for i in range(len(sweep))
                    if (whole or first + i in new) and bound.may_store(meters_[i], times[i])
                ]
            readings += sweep_rows(gateway, sweep, keep, sink.stamp, sink.rows)
        covered = list(runs)
        event_rows: list[dict[str, Any]] = []
        gap_rows_: list[dict[str, Any]] = []
        for index, record in batch.records:
            seq = batch.seq + index
            if seq not in new:
                continue
            if isinstance(record, ReadingRecord):
                if bound.may_store(record.meter, record.gateway_time):
                    readings += record_rows(gateway, record, sink.stamp, sink.rows)
            elif isinstance(record, EventRecord):
                at = record.detected or record.start or now
                if not record.meter or bound.may_store(record.meter, at):
                    event_rows.append(event_row(gateway, record, now))
            elif isinstance(record, GapRecord):
                gap, event = gap_rows(gateway, batch.epoch, seq, record, now)
                gap_rows_.append(gap)
                event_rows.append(event)
                covered.append((record.first, record.last))
        if event_rows:
            conn.execute(insert_ignore(conn, events), event_rows)
        if gap_rows_:
            conn.execute(insert(gaps), gap_rows_)
        if bound.listed:  # another gateway's meters (not stored) and unknown ones (stored)
            self.registry.note(conn, gateway, dict(bound.listed), now)
        if covered:
            self.streams.record(conn, stream, covered, now)
        # step 4: what to publish once committed
        topics = Topics(gateway)
        publish = [(topics.ack, encode(stream.ack()))]
        publish += [
            (topics.resend, encode(r))
            for r in stream.resends(time.monotonic(), self.resend_after, self.max_resend_ranges)
        ]
        records = sum(last - first + 1 for first, last in runs)
        return Outcome(
            "data",
            gateway,
            publish,
            records=records,
            readings=readings,
            duplicates=batch.size - records,
        )

    def due_resends(self) -> list[tuple[str, bytes]]:
        """Re-send requests for holes that are still open (called periodically)."""
        now = time.monotonic()
        out = []
        for stream in self.streams.all():
            for request in stream.resends(now, self.resend_after, self.max_resend_ranges):
                out.append((Topics(stream.gateway).resend, encode(request)))
        return out

    # --- up/status ----------------------------------------------------------------------------

    def _status(
        self, conn: Connection, gateway: str, status: Status, now: datetime, retained: bool
    ) -> Outcome:
        online = status.state == "online"
        at = status.time or now
        row = conn.execute(select(gateway_state).where(gateway_state.c.gateway == gateway)).first()
        changed = (
            row is None
            or row.online != online
            or (online and status.epoch is not None and row.epoch != status.epoch)
        )
        if retained and not changed:
            return Outcome("status", gateway)  # the broker re-delivered what we already have
        sent = presence.sent_of(row.health) if row is not None else None
        if _stale(status, sent):
            log.warning("status of %s sent %s, not after %s: ignored (replayed?)",
                        gateway, status.time, sent)  # fmt: skip
            return Outcome("ignored", gateway, reason="stale status")
        values: dict[str, Any] = {"online": online, "last_seen": now}
        health = status.health or (presence.split_health(row.health)[0] if row else {})
        latest = sent  # the watermark only rises (an unsynced clock's step back does not lower it)
        if online and status.time is not None:
            latest = status.time if sent is None else max(sent, status.time)
        values["health"] = presence.health_with_status(health, now, latest)
        for name in ("software", "config_hash", "archive_version", "epoch", "clock_synced"):
            if getattr(status, name) is not None:
                values[name] = getattr(status, name)
        if row is None:
            conn.execute(insert(gateway_state).values(gateway=gateway, since=at, **values))
        else:
            if changed:
                values["since"] = at
            conn.execute(
                update(gateway_state).where(gateway_state.c.gateway == gateway).values(**values)
            )
        if changed:
            conn.execute(
                insert(gateway_sessions).values(
                    gateway=gateway,
                    state=status.state,
                    at=at,
                    received=now,
                    software=status.software,
                    archive_version=status.archive_version,
                    epoch=status.epoch,
                )
            )
        return Outcome("status", gateway)


def _stale(status: Status, sent: datetime | None) -> bool:
    """Whether ``status`` is an online status not later than the last one applied (``sent``):
    the broker replaying a genuine one (after the will, to make a dead gateway look alive).  An
    unsynced gateway's clock may step back, so its statuses are taken as they come."""
    if status.state != "online" or status.time is None or sent is None:
        return False
    return status.time <= sent and status.clock_synced is not False


class _Binding:
    """Which meters of a message may be stored: the gateway's own at the reading's time, and ones
    the archive has never known; another gateway's (and retired ones) are refused.  All not its
    own are counted in ``listed``."""

    def __init__(self, registry: MeterRegistry, conn: Connection, owned: Ownership) -> None:
        self.registry, self.conn, self.owned = registry, conn, owned
        self.listed: Counter[str] = Counter()
        self._verdict: dict[str, bool] = {}

    def may_store(self, meter: str, at: datetime) -> bool:
        if self.owned.owns(meter, at):
            return True
        self.listed[meter] += 1
        verdict = self._verdict.get(meter)
        if verdict is None:  # never in the archive: stored; another gateway's or retired: refused
            verdict = self._verdict[meter] = bool(
                self.registry.unknown(self.conn, [meter])
            ) and not self.registry.ever_archived(self.conn, meter)
        return verdict
