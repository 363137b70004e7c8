"""The account page: to_restore, a reconnect owed after a payment during an in-flight disconnect,
late fees, payment reversals (冲正) and estimates, scoped to the user's areas (DOM-level checks)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from headend.db import writing
from headend.db.prepay_tables import prepay_account_points, prepay_actions
from headend.prepay import payments, store
from headend.prepay.money import MoneySettings
from headend.vee.tables import vee_estimates
from tests.headend.ops_support import add_user
from tests.web.conftest import Web
from tests.web.support import sign_in


def _account(web: Web) -> None:
    now = web.now
    with writing(web.engine) as conn:
        store.create_account(
            conn, "ACC-1", mode="prepaid", name="Li", area="A2", actor="t", now=now
        )
        conn.execute(
            prepay_account_points.insert().values(
                account="ACC-1", point="P-A2-m01", valid_from=now - timedelta(days=30)
            )
        )
        for ref, amount in (("BANK-1", "100.00"), ("BANK-2", "3.00")):
            payments.top_up(
                conn, "ACC-1", Decimal(amount), ref, channel="bank", paid_at=now,
                money=MoneySettings(), actor="olga", now=now,
            )  # fmt: skip
        payments.reverse_payment(conn, "BANK-1", reason="cheque bounced", actor="sid", now=now)
        store.post(conn, "ACC-1", "fee", -5_641_500, now, "f1", actor="t", now=now)
        store.post(
            conn, "ACC-1", "late_fee", -20_000, now, "latefee:ACC-1:2026-02:2026-03-05",
            actor="prepay", now=now, reason="0.001 a day of 20.00 unpaid",
        )  # fmt: skip
        conn.execute(
            prepay_actions.insert().values(
                account="ACC-1", action="disconnect", state="requested", command_id="c-77",
                attempts=1, created_at=now, updated_at=now,
                history=[{"at": now.isoformat(), "outcome": "superseded", "message": "paid"}],
            )
        )  # fmt: skip
        conn.execute(
            vee_estimates.insert().values(
                account="ACC-1", point="P-A2-m01", meter="A2-m01", origin=now - timedelta(days=3),
                start=now - timedelta(days=3), end=now - timedelta(days=2), start_value="100",
                end_value="112.00", multiplier="1", energy="12.00", rate="0.5",
                method="history_mean", amount_micro=6_000_000, lines=[], charged=False,
                state="active", created_at=now,
            )
        )  # fmt: skip


def test_the_account_page_shows_restore_reconnect_fees_reversals_estimates(web: Web) -> None:
    _account(web)
    vic = sign_in(web.app, "vic")
    page = vic.get("/accounts/ACC-1").text
    # 3.00 − 5.6415 − 0.02 = −2.6615: shown −2.66, 2.67 lifts it above the threshold 0
    assert re.search(r'id="balance">-2.66<', page)
    assert re.search(r'id="to-restore">2.67<', page)
    assert 'id="reconnect-owed"' in page and "c-77" in page
    fees = page[page.index('id="late-fees"') : page.index('id="a-rev"')]
    assert "ACC-1:2026-02" in fees and "2026-03-05" in fees and "0.020000" in fees
    reversals = page[page.index('id="reversals"') : page.index('id="a-est"')]
    assert "BANK-1" in reversals and "cheque bounced" in reversals and "sid" in reversals
    assert "BANK-2" not in reversals
    estimates = page[page.index('id="estimates"') : page.index('id="a-bills"')]
    assert "P-A2-m01" in estimates and "12.00" in estimates and "active" in estimates
    meter = vic.get("/meters/A2-m01").text
    assert 'id="account-link" href="/accounts/ACC-1"' in meter


def test_the_account_page_is_scoped_to_the_users_areas(web: Web) -> None:
    _account(web)
    add_user(web.engine, "bea", "viewer", ["B1"])
    assert sign_in(web.app, "bea").get("/accounts/ACC-1").status_code == 403
    assert sign_in(web.app, "vera").get("/accounts/ACC-1").status_code == 200  # A2's viewer
    assert sign_in(web.app, "vic").get("/accounts/NOPE").status_code == 404


def test_a_paid_account_has_nothing_to_restore(web: Web) -> None:
    _account(web)
    with writing(web.engine) as conn:
        store.post(conn, "ACC-1", "adjustment", 10_000_000, web.now, "adj", actor="t", now=web.now)
    page = sign_in(web.app, "vic").get("/accounts/ACC-1").text
    assert 'id="to-restore-none"' in page and 'id="to-restore"' not in page


def test_the_accounts_list_flags_what_needs_doing_within_scope(web: Web) -> None:
    _account(web)
    with writing(web.engine) as conn:
        store.create_account(conn, "ACC-B", mode="prepaid", area="B1", actor="t", now=web.now)
    page = sign_in(web.app, "vera").get("/accounts").text  # A2's viewer
    row = page[page.index('id="acct-ACC-1"') :]
    row = row[: row.index("</tr>")]
    assert 'href="/accounts/ACC-1"' in row and "-2.66" in row and "2.67" in row
    assert 'data-owed="1"' in row and 'id="acct-ACC-B"' not in page
    everyone = sign_in(web.app, "vic").get("/accounts?stage=ok").text
    assert 'id="acct-ACC-B"' in everyone and 'href="/accounts"' in everyone  # the nav link
    assert 'id="acct-ACC-1"' in everyone  # stage ok
    assert 'id="acct-ACC-1"' not in sign_in(web.app, "vic").get("/accounts?stage=off").text
