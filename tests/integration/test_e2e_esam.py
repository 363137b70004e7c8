"""Secured (ESAM) remote control end to end: simulated cost-control meter → real gateway →
mosquitto with the shipped ACL and password file → the head-end as ``serve`` runs it.

The head-end's laboratory encryption service and the fleet's software ESAM share only the key
file (``[esam] key_file`` of both).  Ground truth: the simulated relay and the ESAM's log.  What
is tried: trip, reclose and a clock set through the secured flow; plaintext to an ESAM meter the archive does
not flag; the encryption service sealing a forged MAC, going down between authentication and
sealing; the gateway getting the second step after the session ended; and an attacker holding the
head-end's broker identity (not its signing key) replaying a genuine step, publishing a forged
step and an unsigned plaintext trip.  Nothing but the genuine trip and reclose switches.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from headend.commands.signing import Ed25519Signer, sign_command
from headend.esam import EncryptionUnavailable
from headend.security.keys import KeyStore
from protocols.uplink import (
    Command,
    CommandAction,
    CommandResult,
    CommandState,
    decode,
    encode,
)
from protocols.uplink.topics import Topics
from tests.integration.test_e2e_flows import TUESDAY, wait_for

pytestmark = pytest.mark.integration
pytest.importorskip("simulators.fleet")
from tests.integration.esam_support import (  # noqa: E402
    ESAM,
    GW,
    MISFILED,
    Attacker,
    Broker,
    running,
    start_broker,
)


@pytest.fixture
def broker(mosquitto_binary: str, tmp_path: Path) -> Any:
    started = start_broker(mosquitto_binary, tmp_path)
    yield started
    started.server.stop()


class ForgedMac:
    """An encryption service whose sealed controls carry a wrong MAC (last byte flipped)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def seal_control(self, *args: Any) -> bytes:
        sealed: bytes = self.real.seal_control(*args)
        return sealed[:-1] + bytes([sealed[-1] ^ 0x5A])


class DownAfterAuthenticate(ForgedMac):
    """The utility's machine stops answering between authentication and sealing."""

    def seal_control(self, *args: Any) -> bytes:
        raise EncryptionUnavailable("connection refused (192.0.2.10:8000)")


class Unreachable(ForgedMac):
    """The utility's machine does not answer at all."""

    def authenticate(self, address: str) -> Any:
        raise EncryptionUnavailable("connection refused")


async def test_secured_trip_reclose_and_everything_that_must_not_switch(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(broker, tmp_path) as e:
        r = e.rig
        # 1. the genuine trip: authenticate → sealed control → relay read back
        assert e.relay() == "closed"
        trip = await r.command("relay_trip", [ESAM])
        done = await r.state_of(trip, "executed", "failed", "expired")
        assert done["state"] == "executed", done
        assert e.relay() == "open"
        [target] = done["targets"]
        assert target["detail"]["relay"] == "open", target
        assert [s["kind"] for s in done["steps"]] == ["authenticate", "control"], done["steps"]
        # the ESAM's data read-back carries the MAC the head-end verified before "executed"
        assert e.log() == [
            ("authenticate", True, ""),
            ("control", True, ""),
            ("readback", True, ""),
        ]
        # every step went out signed by the head-end's key (the gateway verified it)
        [control_step] = e.steps_of(trip, "control")
        assert json.loads(control_step)["signature"]["alg"] == "ed25519"

        # 2. reclose the same way
        close = await r.command("relay_close_direct", [ESAM])
        done = await r.state_of(close, "executed", "failed", "expired")
        assert done["state"] == "executed", done
        assert e.relay() == "closed" and done["targets"][0]["detail"]["relay"] == "closed"
        assert e.log()[-3:] == [
            ("authenticate", True, ""),
            ("control", True, ""),
            ("readback", True, ""),
        ]
        # 2b. the meter's clock runs 7 minutes fast: a clock set through the same flow, read back
        r.fleet.control.drift(ESAM, offset_s=420)
        sync = await r.command("time_sync", [ESAM])
        done = await r.state_of(sync, "executed", "failed", "expired")
        assert done["state"] == "executed", done
        assert [s["kind"] for s in done["steps"]] == ["authenticate", "write"], done["steps"]
        assert abs(done["targets"][0]["detail"]["offset_s"]) <= 10, done
        assert [(k, ok) for k, ok, _ in e.log()[-4:]] == [
            ("authenticate", True),
            ("write", True),
            ("write", True),
            ("readback", True),
        ]
        moves = len(r.fleet.meters[ESAM].relay_log)
        seen = len(e.log())

        # 3. plaintext 1CH to an ESAM meter the archive does not flag: the meter refuses
        plain = await r.command("relay_trip", [MISFILED])
        done = await r.state_of(plain, "executed", "failed", "expired")
        assert done["state"] == "failed", done
        assert done["targets"][0]["reason"], done
        assert "password_error_or_unauthorised" in done["targets"][0]["reason"], done
        assert e.relay(MISFILED) == "closed"
        assert e.log(MISFILED) == [
            ("plaintext_control", False, "plaintext refused outside factory mode")
        ]

        # 4. the head-end's broker identity, stolen: replay, forged step, unsigned trip
        attacker = Attacker(broker)
        try:
            attacker.publish(control_step)  # the genuine, signed trip step, again
            replayed = await wait_for(attacker.outcome(json.loads(control_step)["id"]), "replay")
            assert replayed.state == "refused", replayed
            now = r.app.state.clock.now()
            step = json.loads(control_step)["params"]
            step["esam"]["sealed"] = "00" * 20
            forged = Command(
                id=f"c-forged-{uuid.uuid4().hex[:8]}",
                gateway=GW,
                meters=(ESAM,),
                action=CommandAction.RELAY_TRIP,
                issued=now,
                valid_until=now + timedelta(minutes=1),
                nonce=uuid.uuid4().hex[:16],
                params=step,
            )
            stranger = KeyStore(tmp_path / "stranger")
            stranger.create(TUESDAY - timedelta(days=1))
            forged = sign_command(forged, Ed25519Signer(stranger))  # not the head-end's key...
            assert forged.signature is not None
            head_end_key = r.keys.current(now).key_id  # ...under the head-end's key id
            forged = forged.model_copy(
                update={"signature": forged.signature.model_copy(update={"key_id": head_end_key})}
            )
            attacker.publish(encode(forged))
            unsigned = forged.model_copy(
                update={"id": "c-unsigned-1", "params": {}, "signature": None}
            )
            attacker.publish(encode(unsigned))
            for command in (forged, unsigned):
                refused = await wait_for(attacker.outcome(command.id), command.id)
                assert refused.state == "refused" and refused.reason, refused
            reasons = {x.id: x.reason for x in attacker.results}
        finally:
            attacker.close()
        assert reasons == {
            json.loads(control_step)["id"]: "duplicate",
            forged.id: "signature: bad_signature",
            unsigned.id: "signature: unsigned",
        }
        assert e.relay() == "closed" and len(r.fleet.meters[ESAM].relay_log) == moves
        assert len(e.log()) == seen, "an attacker's frame reached the meter"

        # 5. the encryption service seals a wrong MAC: the meter refuses, nothing switches
        genuine = e.encryption
        e.encryption = ForgedMac(genuine)
        bad = await r.command("relay_trip", [ESAM])
        done = await r.state_of(bad, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed" and done["targets"][0]["reason"], done
        assert done["targets"][0]["reason"] == (
            "the meter refused the control step: password_error_or_unauthorised; "
            "gave up after 2 authentications"
        )
        assert ("control", False, "MAC does not verify") in e.log()[seen:]
        assert e.relay() == "closed"

        # 6. the encryption service goes down after authenticating: nothing sent, reason kept
        seen = len(e.log())
        e.encryption = DownAfterAuthenticate(genuine)
        down = await r.command("relay_trip", [ESAM])
        done = await r.state_of(down, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed", done
        assert "connection refused" in done["targets"][0]["reason"], done
        assert [kind for kind, *_ in e.log()[seen:]] == ["authenticate"]
        assert e.relay() == "closed"

        # ... and unreachable from the start: nothing reaches the meter at all
        seen = len(e.log())
        e.encryption = Unreachable(genuine)
        down = await r.command("relay_trip", [ESAM])
        done = await r.state_of(down, "failed", "executed", "expired")
        e.encryption = genuine
        assert done["state"] == "failed", done
        assert done["targets"][0]["reason"] == "encryption service: connection refused", done
        assert e.log()[seen:] == [] and e.relay() == "closed"

        # 7. the second step reaches the gateway after the session ended (a busy bus, a slow
        # link): the gateway sends nothing, the head-end restarts, then gives up
        import gateway.commands.executor as executor
        from protocols.uplink.secured import ControlStep

        real_run_step = executor.run_step  # type: ignore[attr-defined]

        async def late(ex: Any, command: Any, meter: Any, step: Any) -> Any:
            while isinstance(step, ControlStep) and ex.clock.now() < step.session_until:
                await asyncio.sleep(0.05)
            return await real_run_step(ex, command, meter, step)

        monkeypatch.setattr(executor, "run_step", late)
        seen = len(e.log())
        slow = await r.command("relay_trip", [ESAM])
        done = await r.state_of(slow, "failed", "executed", "expired", timeout=60)
        monkeypatch.setattr(executor, "run_step", real_run_step)
        assert done["state"] == "failed", done
        assert "validity window had passed" in done["targets"][0]["reason"], done
        controls = [x for x in done["steps"] if x["kind"] == "control"]
        assert [(x["state"], x["reason"]) for x in controls] == [
            ("failed", "the session's validity window had passed")
        ] * 2
        assert [kind for kind, *_ in e.log()[seen:]] == ["authenticate", "authenticate"]
        assert e.relay() == "closed" and len(r.fleet.meters[ESAM].relay_log) == moves
        controls = [x for x in done["steps"] if x["kind"] == "control"]
        assert [(x["state"], x["reason"]) for x in controls] == [
            ("failed", "the session's validity window had passed")
        ] * 2


class StolenGateway:
    """Holds the gateway's broker identity (not its bus): reads the gateway's commands and, for
    every secured step, at once publishes an ``executed`` result in the gateway's name — a
    made-up random number 2 for the authentication, a made-up read-back for the control."""

    def __init__(self, broker: Broker) -> None:
        self.forged: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stolen-gateway")
        self.client.username_pw_set(GW, broker.passwords[GW])
        self.client.on_message = self._forge
        self.client.connect(broker.server.host, broker.server.port)
        self.client.loop_start()
        self.client.subscribe(Topics(GW).cmd, qos=1)  # the ACL lets a gateway read its down/

    def _forge(self, client: Any, userdata: Any, message: Any) -> None:
        command = decode(bytes(message.payload), Command)
        step = (command.params or {}).get("esam")
        if not step:
            return
        report: dict[str, Any] = {"step": step["step"], "session": step["session"]}
        if step["step"] == "authenticate":
            report.update(random2="0BADC0DE", esam_serial="ED00" + ESAM)
        else:
            identifier = step.get("readback") or "DF01000800000008"
            report.update(done=1, readback={"identifier": identifier, "data": "1A00" + "00" * 6,
                                            "mac": "12345678"})  # fmt: skip
        forged = CommandResult(
            id=command.id,
            gateway=GW,
            state=CommandState.EXECUTED,
            at=command.issued,
            meter=ESAM,
            detail={"esam": report, "relay": "open"},
        )
        client.publish(Topics(GW).result, encode(forged), qos=1)
        self.forged.append(command.id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_a_stolen_gateway_identity_cannot_get_a_trip_marked_executed(
    broker: Broker, tmp_path: Path
) -> None:
    """The meter is off the bus (the real gateway's answers come only after its timeouts); an
    attacker with the gateway's broker identity answers every step at once, claiming the trip.
    Without the ESAM's reply MAC the head-end has no proof: the target fails, nothing executed."""
    async with running(broker, tmp_path) as e:
        r = e.rig
        r.fleet.control.set_faults(ESAM, silent=True)
        thief = StolenGateway(broker)
        try:
            trip = await r.command("relay_trip", [ESAM])
            done = await r.state_of(trip, "executed", "failed", "expired")
        finally:
            thief.close()
        assert done["state"] == "failed", done
        [target] = done["targets"]
        assert target["reason"].startswith("reply_mac_invalid"), target
        assert [(s["kind"], s["state"]) for s in done["steps"]] == [
            ("authenticate", "executed"),  # the forged random number 2 was believed ...
            ("control", "failed"),  # ... but no ESAM proved the control
        ]
        assert len(thief.forged) == 2 and e.relay() == "closed"
        audit = await r.api.get("/api/v1/audit", params={"action": "command.esam_reply_mac"})
        assert audit.status_code == 200, audit.text
        assert [a["subject"] for a in audit.json()] == [trip], audit.json()
