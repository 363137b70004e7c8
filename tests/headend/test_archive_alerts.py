"""A gateway whose archive is out of sync is an alert in the API (issue 19).

Before, a gateway that had applied a forged archive version 999 showed only ``in_sync: false``
among its fields, and nothing listed it.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert

from headend.archive import push
from headend.commands.signing import NoSigner
from headend.db import writing
from headend.db.tables import gateway_state, gateways
from headend.security import gateway_keys
from protocols.uplink.envelope import raw_public
from tests.headend.ops_support import (  # noqa: F401
    SINCE,
    TUESDAY_10,
    cheap_hashes_fixture,
    ops_fixture,
)


def _setup(ops, reported: dict[str, int | None]) -> None:
    with writing(ops.engine) as conn:
        for gw in ("gw1", "gw2", "gw3"):
            conn.execute(insert(gateways).values(id=gw, name=gw, valid_from=SINCE))
            push.refresh(conn, gw, TUESDAY_10, force=True, signer=NoSigner())  # version 1
            key = raw_public(Ed25519PrivateKey.generate().public_key())  # one per gateway
            gateway_keys.register(conn, gw, key, TUESDAY_10, by="test")  # enrolled
            if reported.get(gw, 0) is not None:
                conn.execute(
                    insert(gateway_state).values(
                        gateway=gw,
                        online=True,
                        since=TUESDAY_10,
                        last_seen=TUESDAY_10,
                        archive_version=reported.get(gw, 1),
                        health="{}",
                    )
                )


def test_a_forged_version_is_a_critical_alert_at_once_and_a_lagging_one_later(ops):
    _setup(ops, {"gw1": 999, "gw2": 0, "gw3": 1})
    viewer = ops.as_("vic")
    alerts = ops.client.get("/api/v1/gateways/alerts", headers=viewer).json()
    assert [(a["gateway"], a["kind"], a["severity"]) for a in alerts] == [
        ("gw1", "archive.forged_version", "critical")
    ]
    assert "never made" in alerts[0]["message"] and alerts[0]["reported"] == 999
    ops.clock.advance(timedelta(minutes=11).total_seconds())
    alerts = ops.client.get("/api/v1/gateways/alerts", headers=viewer).json()
    assert [(a["gateway"], a["kind"]) for a in alerts] == [
        ("gw1", "archive.forged_version"),
        ("gw2", "archive.behind"),
    ]
    one = ops.client.get("/api/v1/gateways/gw2", headers=viewer).json()
    assert (
        one["archive"]["in_sync"] is False and one["archive"]["alert"]["kind"] == "archive.behind"
    )
    assert ops.client.get("/api/v1/gateways/gw3", headers=viewer).json()["archive"]["alert"] is None


def test_a_silent_gateway_is_unreported_and_scoped_users_see_only_theirs(ops):
    _setup(ops, {"gw1": None, "gw2": None, "gw3": None})
    ops.clock.advance(timedelta(minutes=11).total_seconds())
    everyone = ops.client.get("/api/v1/gateways/alerts", headers=ops.as_("vic")).json()
    assert {a["kind"] for a in everyone} == {"archive.unreported"} and len(everyone) == 3
    scoped = ops.client.get("/api/v1/gateways/alerts", headers=ops.as_("vera")).json()
    assert [a["gateway"] for a in scoped] == ["gw2"]  # vera sees area A2 only (gateway gw2)


def test_archive_changes_through_the_api_are_signed_with_the_command_keys(
    engine, tmp_path, monkeypatch, cheap_hashes
):
    from headend.app import create_app
    from headend.config import Settings
    from headend.security.keys import KeyStore
    from protocols.uplink import ArchivePush, decode
    from tests.headend.ops_support import TestClient, add_user, seed_archive

    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "s" * 40)
    keys = KeyStore(tmp_path / "keys")
    info = keys.create(TUESDAY_10 - timedelta(days=1))
    seed_archive(engine)
    add_user(engine, "ada", "admin")
    with writing(engine) as conn:
        conn.execute(insert(gateways).values(id="gw1", name="gw1", valid_from=SINCE))
    settings = Settings(extra={"security": {"keys_dir": str(keys.directory)}})
    app = create_app(settings, engine=engine, ingest=False)
    with TestClient(app) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": "ada", "password": "correct horse battery"}
        ).json()["access_token"]
        r = client.post(
            "/api/v1/gateways/gw1/archive/push", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
    from sqlalchemy import select

    from headend.db import reading
    from headend.db.tables import mqtt_outbox

    with reading(engine) as conn:
        body = conn.execute(
            select(mqtt_outbox.c.payload).where(mqtt_outbox.c.topic.like("%/down/archive"))
        ).scalar_one()
    pushed = decode(bytes(body), ArchivePush)
    assert pushed.signature is not None and pushed.signature.key_id == info.key_id


def test_signature_refusals_are_a_critical_alert_for_a_day(ops):
    """Messages on a gateway's topics that failed the signature check (forged on the broker, or a
    revoked key) make it an ``uplink.forged`` alert, in the API and the console."""
    from headend.db.tables import dead_letters

    now = ops.clock.now()
    rows = [
        ("gw1", "signature: unsigned", now - timedelta(hours=2)),
        ("gw1", "signature: bad_signature", now - timedelta(minutes=5)),
        ("gw2", "signature: unknown_key", now - timedelta(hours=30)),  # older than a day
        ("gw3", "payload is not JSON", now - timedelta(minutes=1)),  # garbage, not a forgery
    ]
    with writing(ops.engine) as conn:
        for gw, reason, at in rows:
            conn.execute(
                insert(dead_letters).values(
                    topic=f"taiqu/v1/{gw}/up/data", gateway=gw, reason=reason, payload=b"x",
                    received=at,
                )
            )  # fmt: skip
    alerts = ops.client.get("/api/v1/gateways/alerts", headers=ops.as_("vic")).json()
    assert [(a["gateway"], a["kind"], a["severity"], a["count"]) for a in alerts] == [
        ("gw1", "uplink.forged", "critical", 2)
    ]
    assert "signature check" in alerts[0]["message"]
    scoped = ops.client.get("/api/v1/gateways/alerts", headers=ops.as_("vera")).json()
    assert scoped == []  # vera sees area A2 only (gateway gw2)
