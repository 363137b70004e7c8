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
