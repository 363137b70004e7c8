"""The console shows a gateway's last message ("last seen") and its last status message apart."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from headend.db import writing
from headend.db.tables import gateway_state
from headend.ingest import presence
from headend.web.session import CSRF_COOKIE
from tests.web.conftest import Web
from tests.web.support import sign_in


def test_overview_and_area_show_last_seen_and_last_status(web: Web) -> None:
    status_at = web.now - timedelta(hours=2, minutes=23)  # the hourly status, long ago
    with writing(web.engine) as conn:
        conn.execute(
            update(gateway_state)
            .where(gateway_state.c.gateway == "gw2")
            .values(last_seen=web.now, health=presence.health_with_status({}, status_at))
        )
    client = sign_in(web.app, "vic")
    token = client.cookies[CSRF_COOKIE]
    client.post("/prefs", data={"lang": "en", "zone": "Asia/Shanghai", "csrf_token": token})
    local = web.now + timedelta(hours=8)  # Shanghai
    status_local = status_at + timedelta(hours=8)
    for path in ("/", "/areas/A2"):
        page = client.get(path).text
        seen = re.search(r"data-last-seen>([^<]*)<", page)
        status = re.search(r"data-last-status>([^<]*)<", page)
        assert seen and status, path
        assert seen.group(1).startswith("last seen") and f"{local:%H:%M}" in seen.group(1)
        assert status.group(1).startswith("last status message")
        assert f"{status_local:%H:%M}" in status.group(1)
