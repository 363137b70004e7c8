"""The console's overview lists a gateway whose messages failed their signature check (issue 19)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert

from headend.db import writing
from headend.db.tables import dead_letters
from tests.web.conftest import Web
from tests.web.support import sign_in


def test_the_overview_shows_forged_uplink_messages(web: Web) -> None:
    client = sign_in(web.app, "vic")
    assert 'data-kind="uplink.forged"' not in client.get("/").text
    with writing(web.engine) as conn:
        conn.execute(
            insert(dead_letters).values(
                topic="taiqu/v1/gw2/up/data", gateway="gw2", reason="signature: unsigned",
                payload=b"{}", received=web.now - timedelta(minutes=3),
            )
        )  # fmt: skip
    page = client.get("/").text
    assert 'id="archive-alerts"' in page and 'data-kind="uplink.forged"' in page
    assert (
        'data-gateway="gw2"' in page
        and "有 1 条报文未通过签名校验" in page
        and 'role="alert"' in page
    )
    with writing(web.engine) as conn:
        conn.execute(delete(dead_letters))
    assert 'data-kind="uplink.forged"' not in client.get("/").text


def test_the_overview_warns_of_a_gateway_heard_from_without_an_uplink_key(web: Web) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from headend.db.tables import gateway_keys as gateway_keys_table
    from headend.db.tables import gateway_state
    from headend.security import gateway_keys

    client = sign_in(web.app, "vic")
    with writing(web.engine) as conn:  # gw2 as never enrolled with a key (a revoked gateway is
        # refused outright, not warned about: tests/security/test_gateway_keys.py)
        conn.execute(delete(gateway_keys_table).where(gateway_keys_table.c.gateway == "gw2"))
        conn.execute(delete(gateway_state))
    assert 'data-kind="uplink.unsigned"' not in client.get("/").text
    with writing(web.engine) as conn:  # gw2 publishes; nobody registered a key for it
        conn.execute(
            insert(gateway_state).values(
                gateway="gw2", online=True, since=web.now, last_seen=web.now, health="{}"
            )
        )
    page = client.get("/").text
    assert 'data-kind="uplink.unsigned"' in page and 'data-gateway="gw2"' in page
    assert "没有登记上行签名密钥" in page
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with writing(web.engine) as conn:
        gateway_keys.register(conn, "gw2", raw, web.now, by="test")
    assert 'data-kind="uplink.unsigned"' not in client.get("/").text
