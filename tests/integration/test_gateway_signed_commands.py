"""Signed commands and meter secrets through the whole daemon: real mosquitto, simulated meters.

The gateway runs as a deployment would (a real-clock config, so signatures are required by
default; the head-end's trust file exported from a real ``KeyStore``; ``[clock_trust] source =
"headend"`` with no NTP); the head-end's side is ``Ed25519Signer``.  An attacker on the broker
publishes unsigned, forged, tampered, foreign-key and replayed commands: each is refused with its
named reason, the simulated relay never moves, and none of their ``issued`` times makes the
gateway trust its clock; the correctly signed trip does all of that.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock.trust import fixed, make_clock_trust
from gateway.config import parse_config
from gateway.config.secrets import resolve_secrets
from gateway.daemon.app import Gateway
from headend.commands.signing import Ed25519Signer, sign_command
from headend.security.keys import KeyStore
from protocols.uplink import Command, CommandAction, Signature, encode
from protocols.uplink.topics import Topics
from tests.integration.test_gateway_daemon import ZONE, HeadEnd, JumpClock, until

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

GW = "gw-signed"
START = datetime(2026, 11, 24, 10, 1, tzinfo=ZONE)
LOCKED, PLAIN = "202611260001", "202611260002"  # LOCKED has its own password and operator
SECRETS = (
    '[default]\npassword = "02000000"\noperator = "00000000"\n\n'
    f'[meters."{LOCKED}"]\npassword = "02314159"\noperator = "0000A001"\n'
)


class Rig:
    """Fleet + daemon + a head-end that signs (and an attacker that does not)."""

    def __init__(self, fleet: Any, gateway: Gateway, headend: HeadEnd, keys: KeyStore) -> None:
        self.fleet, self.gateway, self.headend = fleet, gateway, headend
        self.clock = gateway.clock
        self.signer = Ed25519Signer(keys)

    def command(self, action: CommandAction, *meters: str, nonce: str | None = None) -> Command:
        now = self.clock.now()
        return Command(
            id=f"cmd-{uuid.uuid4().hex[:10]}",
            gateway=GW,
            meters=meters,
            action=action,
            issued=now,
            valid_until=now + timedelta(minutes=10),
            nonce=nonce or uuid.uuid4().hex[:16],
        )

    def signed(self, command: Command) -> Command:
        return sign_command(command, self.signer)

    def publish(self, payload: bytes) -> None:
        client = self.headend.client
        client.publish(Topics(GW).cmd, payload, qos=1).wait_for_publish(5)

    def relay(self, meter: str) -> str:
        return str(self.fleet.control.relay(meter)["relay"])

    def relay_moves(self, meter: str) -> int:
        return len(self.fleet.meters[meter].relay_log)

    async def outcome(self, command_id: str, state: str, reason: str | None = None) -> None:
        await until(
            lambda: any(s == state and m is None and (reason is None or r == reason)
                        for s, m, r in self.headend.steps(command_id)),
            f"{command_id} {state} {reason or ''}",
        )  # fmt: skip


def fleet_doc() -> Any:
    return parse_fleet(
        {
            "areas": [{"name": "a1", "gateway_id": GW}],
            "buses": [{"name": "bus1", "area": "a1", "baud": 9600, "pace": False}],
            "meters": [
                {"bus": "bus1", "address": LOCKED, "passwords": {"02": "314159"},
                 "operators": ["0000A001"]},
                {"bus": "bus1", "address": PLAIN},
            ],
        },
        "signed-commands fleet",
    )  # fmt: skip


@asynccontextmanager
async def rig(mosquitto: Any, tmp: Path, *, secrets: bool = True) -> AsyncIterator[Rig]:
    clock = JumpClock(START)
    keys = KeyStore(tmp / "keys")
    keys.create(START - timedelta(days=1))
    trust = keys.export_trust(tmp / "headend-keys.json", START)
    commands: dict[str, Any] = {"reconnect_window_s": 0}
    if secrets:
        commands["meter_secrets_file"] = str(tmp / "meter-secrets.toml")
        (tmp / "meter-secrets.toml").write_text(SECRETS)
        os.chmod(tmp / "meter-secrets.toml", 0o600)
    async with simulators.start_fleet(fleet_doc(), clock=clock) as fleet:
        headend = HeadEnd(mosquitto.port)
        doc = {
            "gateway_id": GW,  # clock: real (the default), so signatures are required
            "data_dir": str(tmp / "gw"),
            "broker": {"host": mosquitto.host, "port": mosquitto.port},
            "schedule": {"energy_minutes": 15, "events_minutes": 5, "backfill_days": 0},
            "clock_trust": {"source": "headend"},
            "commands": commands,
            "signatures": {"trust_file": str(trust)},
            "buses": [{"name": "bus1", "port": fleet.endpoints["bus1"], "baud": 9600,
                       "response_timeout_ms": 300}],
            "meters": [{"bus": "bus1", "protocol": "dlt645-2007", "address": a}
                       for a in (LOCKED, PLAIN)],
        }  # fmt: skip
        path = tmp / "gateway.toml"
        cfg = parse_config(doc, path)
        resolve_secrets(cfg, path)  # what `taiqu gateway run` checks before starting
        trusted = make_clock_trust(cfg.clock_trust_source, cfg.clock_trust.headend_tolerance_s, clock)
        trusted.sources = (fixed(False),)  # no NTP: only a head-end time can vouch for the clock
        gateway = Gateway(cfg, config_path=path, clock=clock, clock_trust=trusted)
        await gateway.start()
        try:
            await gateway.uplink.wait_connected(10)
            yield Rig(fleet, gateway, headend, keys)
        finally:
            await gateway.stop()
            headend.close()


async def test_only_the_head_ends_signed_command_moves_the_relay_and_vouches_for_the_clock(
    mosquitto: Any, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path) as r:
        gw, meter = r.gateway, PLAIN
        assert not gw.clocktrust.synced()
        attacker = Ed25519PrivateKey.generate()
        genuine = r.signed(r.command(CommandAction.RELAY_TRIP, PLAIN))
        key_id = genuine.signature.key_id  # type: ignore[union-attr]

        def attacker_signed(command: Command, key: str) -> Command:
            value = base64.b64encode(attacker.sign(command.signing_bytes())).decode()
            return command.model_copy(update={"signature": Signature(key_id=key, value=value)})

        tampered = r.signed(r.command(CommandAction.RELAY_TRIP, LOCKED))
        tampered = tampered.model_copy(update={"meters": (PLAIN,)})  # signed for another meter
        attempts = [
            (r.command(CommandAction.RELAY_TRIP, meter), "signature: unsigned"),
            (attacker_signed(r.command(CommandAction.RELAY_TRIP, meter), key_id),
             "signature: bad_signature"),
            (tampered, "signature: bad_signature"),
            (attacker_signed(r.command(CommandAction.RELAY_TRIP, meter), "he-attacker"),
             "signature: unknown_key"),
        ]  # fmt: skip
        for command, reason in attempts:
            r.publish(encode(command))
            await r.outcome(command.id, "refused", reason)
        assert r.relay(meter) == "closed" and r.relay_moves(meter) == 0
        assert not gw.clocktrust.synced(), "a refused command's issued time was trusted"

        r.publish(encode(genuine))
        await r.outcome(genuine.id, "executed")
        assert r.relay(meter) == "open"
        assert gw.clocktrust.synced() and gw.clocktrust.source == "headend"

        r.fleet.control.relay(meter, "close")  # closed on site: a replay must not trip it again
        moves = r.relay_moves(meter)
        r.publish(encode(genuine))  # the captured bytes, verbatim
        await until(lambda: ("refused", None, "duplicate") in r.headend.steps(genuine.id), "dup")
        same_nonce = r.signed(r.command(CommandAction.RELAY_TRIP, meter, nonce=genuine.nonce))
        r.publish(encode(same_nonce))
        await r.outcome(same_nonce.id, "refused", "signature: replayed")
        assert r.relay(meter) == "closed" and r.relay_moves(meter) == moves


@pytest.mark.parametrize("secrets", [True, False], ids=["secrets-file", "factory-defaults"])
async def test_control_commands_use_each_meters_password_from_the_secrets_file(
    mosquitto: Any, tmp_path: Path, secrets: bool
) -> None:
    async with rig(mosquitto, tmp_path, secrets=secrets) as r:
        r.gateway.clocktrust.sources = (fixed(True),)
        trip = r.signed(r.command(CommandAction.RELAY_TRIP, LOCKED, PLAIN))
        r.publish(encode(trip))
        await until(lambda: any(m is None for s, m, _ in r.headend.steps(trip.id)
                                if s in ("executed", "failed")), "trip done")  # fmt: skip
        per_meter = {m: (s, why) for s, m, why in r.headend.steps(trip.id) if m is not None}
        assert per_meter[PLAIN] == ("executed", None) and r.relay(PLAIN) == "open"
        if secrets:
            assert per_meter[LOCKED] == ("executed", None) and r.relay(LOCKED) == "open"
        else:  # the factory password: the meter refuses, the relay stays closed
            state, why = per_meter[LOCKED]
            assert state == "failed" and "password" in (why or ""), per_meter
            assert r.relay(LOCKED) == "closed"
