"""The dispatcher: publishes approved dispatches to their gateways and expires stale commands.

Safe with several head-end instances: a dispatch is *claimed* before it is published — selected
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, then on every backend moved ``approved → sending`` by a
conditional UPDATE that only one claimant can win — and marked ``sent`` only after ``publish``
returned (the broker's PUBACK).  A claim older than ``claim_timeout`` (its instance died) is taken
over; the gateway recognises a repeated command by its id.  Disconnects are held, not sent, while
the pause switch is on or outside the disconnect window; they expire at ``valid_until``.  Every
command to a gateway that reports an archive version the head-end never issued is held too: that
gateway applied a forged archive, so its meter ids may point at other meters' addresses
(``headend.archive.push`` raises the alert; a new signed push it accepts lifts the hold).

Each pass also heals archives: a gateway that reports an older or a never-issued version gets
the latest signed push republished as it was issued, at most once per ``REPUBLISH_EVERY`` for each
gateway, since a forged retained push may have taken the real one's place on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from headend import audit
from headend.archive import push
from headend.archive.effective import in_force
from headend.commands import expiry, secured, steps
from headend.commands.settings import CommandSettings, FlowSettings
from headend.commands.signing import NoSigner, Signer
from headend.commands.states import State
from headend.db import reading, writing
from headend.db.ops_tables import command_dispatches, command_targets, commands
from headend.db.tables import archive_versions, gateway_state
from headend.db.tables import meters as archive_meters
from headend.esam import EncryptionService
from headend.guards import DISCONNECTS, GuardSettings, check_window
from headend.guards import store as guard_store
from protocols.model import meter_zone
from protocols.uplink import Command, CommandAction, Topics, encode
from taiqu.clock import Clock

log = logging.getLogger(__name__)
REPUBLISH_EVERY = timedelta(minutes=30)
HEAL = frozenset({"archive.behind", "archive.forged_version"})  # the gateway is alive and wrong
Publish = Callable[[str, bytes], None]  # blocks until the broker acknowledged (QoS 1) or raises


def _forged_archives(conn: Connection, gateway_ids: set[str]) -> dict[str, str]:
    """The gateways among ``gateway_ids`` that report an archive version never issued, and why."""
    if not gateway_ids:
        return {}
    issued = dict(
        conn.execute(
            select(archive_versions.c.gateway, func.max(archive_versions.c.version))
            .where(archive_versions.c.gateway.in_(sorted(gateway_ids)))
            .group_by(archive_versions.c.gateway)
        ).all()
    )
    reported = conn.execute(
        select(gateway_state.c.gateway, gateway_state.c.archive_version).where(
            gateway_state.c.gateway.in_(sorted(gateway_ids)),
            gateway_state.c.archive_version.is_not(None),
        )
    ).all()
    return {
        gw: f"gateway runs archive version {version}, never issued (at most {issued.get(gw, 0)})"
        for gw, version in reported
        if version > issued.get(gw, 0)
    }


def _address_of(conn: Connection, meter: str) -> str | None:
    """The archived address of ``meter`` (the version in force)."""
    m = archive_meters.c
    return conn.execute(
        select(m.address).where(m.id == meter, in_force(archive_meters, None))
    ).scalar()


@dataclass
class Dispatcher:
    """Claims, publishes and expires; ``run_once`` is one pass, ``run`` loops until stopped."""

    engine: Engine
    publish: Publish
    clock: Clock
    guards: GuardSettings
    settings: CommandSettings = field(default_factory=CommandSettings)
    signer: Signer = field(default_factory=NoSigner)
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    encryption: EncryptionService | None = None  # seals the steps of ESAM meters
    flow: FlowSettings = field(default_factory=FlowSettings)
    _republished: dict[str, datetime] = field(default_factory=dict)

    def run_once(self) -> int:
        """Expire, heal archives, publish what is due, advance ESAM flows; how many were sent."""
        now = self.clock.now()
        self.expire(now)
        self.republish_archives(now)
        sent = 0
        for dispatch_id in self._claim(now):
            sent += self._send(dispatch_id)
        return sent + self._secured_pass(now)

    def _secured_pass(self, now: datetime) -> int:
        """Act on ESAM step results, then sign and publish the due steps."""
        zone = meter_zone()
        secured.advance(
            self.engine,
            self.encryption,
            _address_of,
            lambda at: at.astimezone(zone).replace(tzinfo=None),
            self.flow,
            now,
            self.settings.clock_set,
        )
        with writing(self.engine) as conn:
            held = DISCONNECTS if self._hold_reason(conn, now) else frozenset()
            due = steps.due_commands(conn, now, self.flow, held)
        sent = 0
        for gateway, command in due:
            signature = self.signer.sign(command)
            if signature is not None:
                command = command.model_copy(update={"signature": signature})
            try:
                self.publish(Topics(gateway).cmd, encode(command))
                sent += 1
            except Exception as exc:
                log.warning("publishing step %s failed (%s); will retry", command.id, exc)
                with writing(self.engine) as conn:
                    steps.unsend(conn, command.id, f"publish failed: {exc}")
        return sent

    def _esam_targets(self, conn: object, action: str, meters: list[str]) -> dict[str, str]:
        """The dispatch's meters flagged ``esam`` (id → address) when the action needs the flow."""
        if CommandAction(action) not in secured.SECURED_ACTIONS or not meters:
            return {}
        m = archive_meters.c
        rows = conn.execute(  # type: ignore[attr-defined]
            select(m.id, m.address).where(
                m.id.in_(meters), m.esam.is_(True), in_force(archive_meters, None)
            )
        ).all()
        return {r.id: r.address for r in rows}

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set (errors are logged, never fatal)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("dispatcher pass failed; retrying")
            try:
                wait = await asyncio.to_thread(self.next_wait)
            except Exception:
                log.exception("dispatcher: cannot tell whether steps are in flight")
                wait = self.clock.wall_seconds(self.settings.dispatch_interval)
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass

    def republish_archives(self, now: datetime) -> list[str]:
        """Republish the latest archive of every gateway with an archive alert (rate-limited)."""
        done: list[str] = []
        with writing(self.engine) as conn:
            for found in push.alerts(conn, now):
                if found.kind not in HEAL:
                    continue
                last = self._republished.get(found.gateway)
                if last is not None and now - last < REPUBLISH_EVERY:
                    continue
                version = push.republish(conn, found.gateway, now)
                self._republished[found.gateway] = now
                log.warning(
                    "archive of %s republished (version %s): %s", found.gateway, version, found.kind
                )
                done.append(found.gateway)
        return done

    def next_wait(self) -> float:
        """Wall seconds to the next pass: ``step_poll_interval`` while a secured step is in
        flight (each hop of an ESAM flow then waits ~0.1 s, not a dispatch interval)."""
        wait = self.clock.wall_seconds(self.settings.dispatch_interval)
        with reading(self.engine) as conn:
            if steps.in_flight(conn, self.clock.now(), self.flow):
                return min(wait, self.settings.step_poll_interval)
        return wait

    def _claim(self, now: datetime) -> list[str]:
        d, c = command_dispatches.c, commands.c
        stale = now - timedelta(seconds=self.settings.claim_timeout)
        due = or_(
            d.state == State.APPROVED.value,
            and_(d.state == State.SENDING.value, d.claimed_at < stale),
        )
        query = (
            select(d.id, d.gateway, c.action)
            .select_from(command_dispatches.join(commands, c.id == d.command_id))
            .where(due, c.valid_until > now)
            .order_by(c.created_at, d.id)
            .limit(100)
        )
        claimed: list[str] = []
        with writing(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=command_dispatches)
            rows = conn.execute(query).all()
            held = (
                self._hold_reason(conn, now)
                if any(CommandAction(r.action) in DISCONNECTS for r in rows)
                else None
            )
            forged = _forged_archives(conn, {r.gateway for r in rows})
            for row in rows:
                if row.gateway in forged:
                    conn.execute(
                        update(command_dispatches)
                        .where(d.id == row.id)
                        .values(reason=f"held: {forged[row.gateway]}")
                    )
                    continue
                if held and CommandAction(row.action) in DISCONNECTS:
                    conn.execute(
                        update(command_dispatches)
                        .where(d.id == row.id)
                        .values(reason=f"held: {held}")
                    )
                    continue
                won = conn.execute(
                    update(command_dispatches)
                    .where(d.id == row.id, due)
                    .values(state=State.SENDING.value, claim=self.instance, claimed_at=now)
                )
                if won.rowcount:
                    claimed.append(row.id)
        return claimed

    def _hold_reason(self, conn: object, now: datetime) -> str | None:
        state = guard_store.load_state(conn, now.astimezone(self.guards.zone).date())  # type: ignore[arg-type]
        if state.paused:
            return "all disconnects are paused"
        window = check_window(self.guards, state, now)
        return window.message if window.refused else None

    def _send(self, dispatch_id: str) -> int:
        d = command_dispatches.c
        with writing(self.engine) as conn:
            row = conn.execute(
                select(
                    command_dispatches, commands.c.action, commands.c.params, commands.c.valid_until
                )
                .select_from(command_dispatches.join(commands, commands.c.id == d.command_id))
                .where(d.id == dispatch_id, d.claim == self.instance)
            ).one_or_none()
            meters = list(
                conn.execute(
                    select(command_targets.c.meter)
                    .where(command_targets.c.dispatch_id == dispatch_id)
                    .order_by(command_targets.c.meter)
                ).scalars()
            )
            esam = self._esam_targets(conn, row.action, meters) if row is not None else {}
        if row is None:
            return 0
        now = self.clock.now()
        plain = tuple(m for m in meters if m not in esam)  # ESAM meters go the secured way
        command = Command(
            id=row.id,
            gateway=row.gateway,
            meters=plain,
            action=CommandAction(row.action),
            params=row.params,
            issued=now,
            valid_until=row.valid_until,
            nonce=row.nonce,
        )
        signature = self.signer.sign(command)
        if signature is not None:
            command = command.model_copy(update={"signature": signature})
        try:
            if plain:
                self.publish(Topics(row.gateway).cmd, encode(command))
        except Exception as exc:
            log.warning("publishing %s to %s failed (%s); will retry", row.id, row.gateway, exc)
            with writing(self.engine) as conn:
                conn.execute(
                    update(command_dispatches)
                    .where(
                        d.id == dispatch_id,
                        d.claim == self.instance,
                        d.state == State.SENDING.value,
                    )
                    .values(state=State.APPROVED.value, claim=None, reason=f"publish failed: {exc}")
                )
            return 0
        action = CommandAction(row.action)
        first_steps = [  # the encryption service is called with no transaction open
            (target, secured.authenticate(self.encryption, target))
            for target in (
                steps.Target(row.command_id, row.id, row.gateway, meter, address, action)
                for meter, address in esam.items()
            )
        ]
        with writing(self.engine) as conn:
            # The broker has it: record when, even if the gateway's answer got here first and
            # moved the dispatch on (its state then stays as the answer left it).
            done = conn.execute(
                update(command_dispatches)
                .where(
                    d.id == dispatch_id,
                    d.claim == self.instance,
                    d.sent_at.is_(None),
                    d.state.notin_([State.APPROVED.value, State.CANCELLED.value]),
                )
                .values(sent_at=now, reason=None)
            )
            if not done.rowcount:
                return 0
            conn.execute(
                update(command_dispatches)
                .where(d.id == dispatch_id, d.state == State.SENDING.value)
                .values(state=State.SENT.value)
            )
            conn.execute(
                update(command_targets)
                .where(
                    command_targets.c.dispatch_id == dispatch_id,
                    command_targets.c.state == State.CREATED.value,
                )
                .values(state=State.SENT.value, at=now)
            )
            c = commands.c
            conn.execute(
                update(commands)
                .where(c.id == row.command_id, c.sent_at.is_(None))
                .values(sent_at=now)
            )
            conn.execute(
                update(commands)
                .where(c.id == row.command_id, c.state == State.APPROVED.value)
                .values(state=State.SENT.value)
            )
            for target, decision in first_steps:
                secured.apply(conn, target, decision, now)
            audit.append(
                conn,
                "system",
                "command.sent",
                row.command_id,
                {"dispatch": row.id, "gateway": row.gateway, "meters": len(meters)},
                at=now,
            )
        return 1

    def expire(self, now: datetime) -> int:
        """Expire what can no longer happen; returns how many commands changed."""
        return expiry.expire(self.engine, now, timedelta(seconds=self.settings.result_grace))
