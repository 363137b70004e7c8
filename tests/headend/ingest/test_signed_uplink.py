"""Signed uplink at ingest: verified before anything is decoded, stored or counted (issue 19)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select

from headend.db.engine import writing
from headend.db.tables import dead_letters, readings, streams
from headend.ingest.keys import GatewayKeys
from headend.ingest.store import Ingestor
from headend.ingest.streams import held_runs
from headend.security.gateway_keys import current, register, revoke
from protocols.uplink import CommandResult, CommandState, Status, Topics, encode
from protocols.uplink.envelope import HEADER, Sealer, raw_public
from tests.headend.gen import batch, reading

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GW, EPOCH = "gw-0002", "00112233aabbccdd"


def _key(engine: Engine, gateway: str = GW) -> Sealer:
    private = Ed25519PrivateKey.generate()
    with writing(engine) as conn:
        register(conn, gateway, raw_public(private.public_key()), NOW, "test")
    return Sealer(private)


def _records(first: int, last: int) -> list:
    return [reading("202600000001", step) for step in range(first, last + 1)]


def _data(seq: int, records: list) -> tuple[str, bytes]:
    return Topics(GW).data, encode(batch(GW, EPOCH, seq, records))


def _handle(engine: Engine, ing: Ingestor, topic: str, payload: bytes):
    with writing(engine) as conn:
        return ing.handle(conn, topic, payload, NOW)


def _dead(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(dead_letters.c.reason).order_by(dead_letters.c.id)).scalars()
        )


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_forged_sequence_claim_is_refused_and_the_real_records_are_stored(engine: Engine) -> None:
    sealer = _key(engine)
    ing = Ingestor()
    real = _records(760, 771)
    topic, forged = _data(760, [reading("202600000001", 9000 + i) for i in range(12)])
    # Unsigned, signed by another key, and a real signature over other bytes: all refused.
    stranger = Sealer(Ed25519PrivateKey.generate())
    genuine = sealer.seal(topic, _data(1, _records(1, 1))[1])
    spliced = genuine[:HEADER] + forged
    for payload in (forged, stranger.seal(topic, forged), spliced):
        assert _handle(engine, ing, topic, payload).kind == "dead"
    assert _dead(engine) == [
        "signature: unsigned",
        f"signature: unknown_key (key {stranger.key_id})",
        "signature: bad_signature",
    ]
    assert _count(engine, streams) == 0 and _count(engine, readings) == 0  # nothing claimed
    outcome = _handle(engine, ing, topic, sealer.seal(topic, _data(760, real)[1]))
    assert (outcome.kind, outcome.records, outcome.duplicates) == ("data", 12, 0)
    with engine.connect() as conn:
        assert held_runs(conn, GW, EPOCH) == [(760, 771)]
    assert _count(engine, readings) == 12 * 5


def test_status_and_results_are_verified_on_their_own_topic(engine: Engine) -> None:
    sealer = _key(engine)
    ing = Ingestor()
    ing.on_result = lambda conn, gw, result: seen.append(result.state)
    seen: list[CommandState] = []
    status = encode(Status(gateway=GW, state="online", time=NOW, epoch=EPOCH))
    assert _handle(engine, ing, Topics(GW).status, sealer.seal(Topics(GW).status, status)).kind == (
        "status"
    )
    result = encode(CommandResult(id="C1.1", gateway=GW, state=CommandState.EXECUTED, at=NOW))
    assert _handle(engine, ing, Topics(GW).result, result).kind == "dead"  # forged: unsigned
    # a genuine signature made for the status topic does not verify on the result topic
    moved = sealer.seal(Topics(GW).status, result)
    assert _handle(engine, ing, Topics(GW).result, moved).kind == "dead"
    assert seen == []
    assert _handle(engine, ing, Topics(GW).result, sealer.seal(Topics(GW).result, result)).kind == (
        "result"
    )
    assert seen == [CommandState.EXECUTED]
    assert _dead(engine) == ["signature: unsigned", "signature: bad_signature"]


def test_re_enrolment_revokes_the_old_key(engine: Engine) -> None:
    old = _key(engine)
    ing = Ingestor(keys=GatewayKeys(recheck=0))
    topic, body = _data(1, _records(1, 1))
    assert _handle(engine, ing, topic, old.seal(topic, body)).kind == "data"
    new = _key(engine)
    with engine.connect() as conn:
        assert list(current(conn, GW)) == [new.key_id]
    topic, body = _data(2, _records(2, 2))
    assert _handle(engine, ing, topic, old.seal(topic, body)).kind == "dead"
    assert _dead(engine) == [f"signature: unknown_key (key {old.key_id})"]  # a revoked key
    assert _handle(engine, ing, topic, new.seal(topic, body)).kind == "data"


@pytest.mark.parametrize("require", [False, True])
def test_policy_for_gateways_without_a_key(engine: Engine, require: bool) -> None:
    ing = Ingestor(keys=GatewayKeys(require=require))
    topic, body = _data(1, _records(1, 2))
    signed_unregistered = Sealer(Ed25519PrivateKey.generate()).seal(topic, body)
    kinds = [_handle(engine, ing, topic, p).kind for p in (body, signed_unregistered)]
    if require:
        assert kinds == ["dead", "dead"]
        assert _dead(engine) == ["signature: no_registered_key"] * 2
    else:  # accepted unverified (the second is a duplicate of the first)
        assert kinds == ["data", "data"] and _dead(engine) == []


def test_a_truncated_envelope_is_a_dead_letter(engine: Engine) -> None:
    _key(engine)
    outcome = _handle(engine, Ingestor(), Topics(GW).data, b"TQS1" + b"\0" * 20)
    assert outcome.kind == "dead" and "has no body" in (outcome.reason or "")


def test_a_revoked_gateway_never_falls_back_to_unverified(engine: Engine) -> None:
    """``revoke-gateway`` revokes every key: before, the gateway then had "no key" and, with
    ``require_signatures = false``, anything on its topics was stored unverified — forged unsigned
    batches and the stolen key's own signatures alike."""
    old = _key(engine)
    ing = Ingestor(keys=GatewayKeys(require=False, recheck=0))
    topic, body = _data(1, _records(1, 3))
    assert _handle(engine, ing, topic, old.seal(topic, body)).kind == "data"
    with writing(engine) as conn:
        assert revoke(conn, GW, NOW) == 1
    topic, body = _data(4, _records(4, 6))
    kinds = [_handle(engine, ing, topic, p).kind for p in (body, old.seal(topic, body))]
    assert kinds == ["dead", "dead"]
    assert _dead(engine) == ["signature: revoked"] * 2
    with engine.connect() as conn:
        assert held_runs(conn, GW, EPOCH) == [(1, 3)]
    new = _key(engine)  # enrolled again: its new key is accepted, the old one still refused
    assert _handle(engine, ing, topic, old.seal(topic, body)).kind == "dead"
    assert _handle(engine, ing, topic, new.seal(topic, body)).kind == "data"


def test_a_signed_bomb_or_nesting_is_a_typed_bounded_dead_letter(engine: Engine) -> None:
    """The body is inflated and parsed only after the signature verifies; a genuine signature
    over a zlib bomb or ``[[[[…`` (a compromised gateway) is a typed, bounded dead letter, not an
    exception that rolls back the whole group (before, the nesting raised RecursionError)."""
    sealer = _key(engine)
    ing = Ingestor(keys=GatewayKeys(recheck=0), dead_prefix=1024)
    topic = Topics(GW).data
    bomb = zlib.compress(b'{"v":1,"x":"' + b"0" * (40 * 1024 * 1024) + b'"}', 9)
    nested = b'{"v":1,"gw":"' + GW.encode() + b'","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for body in (bomb, nested):
        outcome = _handle(engine, ing, topic, sealer.seal(topic, body))
        assert outcome.kind == "dead"
    reasons = _dead(engine)
    assert "inflates beyond" in reasons[0] and "nests JSON too deeply" in reasons[1]
    assert "first 1024 kept" in reasons[1]
    with engine.connect() as conn:
        kept = conn.execute(select(func.max(func.length(dead_letters.c.payload)))).scalar_one()
    assert kept == 1024
    assert _count(engine, streams) == 0


def test_invented_gateways_do_not_grow_the_key_cache_without_bound(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker attacker can publish under any number of invented gateway ids; each is looked
    up once and refused, and expired cache entries are dropped past ``MAX_CACHED``."""
    monkeypatch.setattr("headend.ingest.keys.MAX_CACHED", 50)
    keys = GatewayKeys(require=True, recheck=0)
    ing = Ingestor(keys=keys)
    for i in range(200):
        topic = f"taiqu/v1/fake-{i}/up/data"
        assert _handle(engine, ing, topic, b"{}").kind == "dead"
    assert len(keys._keys) <= 51
