"""The validation queue page: area-scoped, a decision needs an operator, a reason and the CSRF
token, and lands in the audit log."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from headend.db import reading, writing
from headend.db.ops_tables import audit_log
from headend.vee import store
from headend.vee.rules import Failure
from tests.web.conftest import Web
from tests.web.support import csrf_of, sign_in


def _held(web: Web, meter: str, point: str) -> int:
    t = web.now - timedelta(hours=1)
    failure = Failure(
        meter, t, Decimal(9101), "plausible_max", "9000 kWh in 1 h", t - timedelta(hours=1),
        Decimal(101),
    )  # fmt: skip
    with writing(web.engine) as conn:
        store.record(conn, point, meter, [failure], (t - timedelta(hours=2), t), web.now)
        return int(store.queue(conn, meter=meter)[0]["id"])


def test_the_queue_is_scoped_and_decisions_are_audited(web: Web) -> None:
    a2 = _held(web, "A2-m01", "P-A2-m01")
    a1 = _held(web, "A1-m01", "P-A1-m01")
    vera = sign_in(web.app, "vera")  # viewer of A2
    page = vera.get("/validation").text
    assert f'id="flag-{a2}"' in page and f'id="flag-{a1}"' not in page
    assert "9101" in page and "plausible_max" in page and "/decision" not in page
    ola = sign_in(web.app, "ola")  # operator of A2
    page = ola.get("/validation").text
    form = {"decision": "reject", "reason": "noise on the bus", "csrf_token": csrf_of(page)}
    r = ola.post(f"/validation/{a1}/decision", data=form, follow_redirects=False)
    assert r.status_code == 403  # not her area
    r = ola.post(f"/validation/{a2}/decision", data={**form, "csrf_token": "forged"})
    assert r.status_code == 403
    r = ola.post(f"/validation/{a2}/decision", data=form, follow_redirects=False)
    assert r.status_code == 303
    again = ola.post(f"/validation/{a2}/decision", data=form, follow_redirects=False)
    assert again.status_code == 409
    assert f'id="flag-{a2}"' not in ola.get("/validation").text
    assert "noise on the bus" in ola.get("/validation?state=rejected").text
    with reading(web.engine) as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert "vee.reject" in actions
