"""The prepayment API: tariffs, accounts, points, idempotent top-ups, adjustments, ledger,
roles and area scoping, reconciliation, postpaid bills; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from headend.app import create_app
from headend.config import Settings
from headend.db import writing
from headend.prepay import jobs
from taiqu.clock import ManualClock
from tests.headend.ops_support import (  # noqa: F401
    USERS,
    TestClient,
    add_user,
    cheap_hashes_fixture,
    seed_archive,
)
from tests.headend.test_prepay_support import add_readings, local

NOW = local(2026, 3, 10, 10)
API = "/api/v1/prepay"


class Client:
    def __init__(self, client, clock, engine):
        self.client, self.clock, self.engine = client, clock, engine
        self.tokens = {}

    def h(self, name):
        if name not in self.tokens:
            r = self.client.post(
                "/api/v1/auth/token", data={"username": name, "password": "correct horse battery"}
            )
            self.tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self.tokens[name]

    def post(self, who, path, body):
        return self.client.post(API + path, json=body, headers=self.h(who))

    def get(self, who, path, **params):
        return self.client.get(API + path, params=params, headers=self.h(who))


@pytest.fixture
def api(engine, monkeypatch, cheap_hashes):
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "s" * 40)
    seed_archive(engine)  # areas A1, A2, B1; points P-<meter>
    for name, (role, scope) in USERS.items():
        add_user(engine, name, role, scope)
    clock = ManualClock(NOW)
    app = create_app(Settings(extra={"prepay": {"quiet_hours": None}}), engine=engine, ingest=False)
    app.state.clock = clock
    with TestClient(app) as client:
        c = Client(client, clock, engine)
        r = c.post(
            "ada",
            "/tariffs/res",
            {
                "valid_from": "2025-01-01T00:00:00+08:00",
                "definition": {"kind": "flat", "price": "0.5"},
            },
        )
        assert r.status_code == 201, r.text
        for acc, point in (("a2", "P-A2-m01"), ("a1", "P-A1-m01")):
            r = c.post("ada", "/accounts", {"id": acc, "language": "en"})
            assert r.status_code == 201, r.text
            r = c.post(
                "ada",
                f"/accounts/{acc}/points",
                {"point": point, "valid_from": "2026-03-01T00:00:00+08:00", "tariff": "res"},
            )
            assert r.status_code == 201, r.text
        yield c


def run_jobs(api):
    j = jobs.PrepayJobs(
        api.engine, jobs.Context.from_extra({"prepay": {"quiet_hours": None}}), api.clock
    )
    return j.run_once()


def test_top_ups_are_idempotent_by_reference_and_the_balance_is_the_ledger(api):
    body = {"reference": "BANK-20260310-0001", "amount": "100.00", "channel": "bank"}
    first = api.post("olga", "/accounts/a2/topups", body)
    assert first.status_code == 201, first.text
    again = api.post("olga", "/accounts/a2/topups", body)
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert again.json()["ledger_id"] == first.json()["ledger_id"]
    clash = api.post("olga", "/accounts/a2/topups", {**body, "amount": "10.00"})
    assert clash.status_code == 409 and "BANK-20260310-0001" in clash.json()["detail"]
    # Energy: 3 March 0 → 10 March 40 kWh × 0.5 = 20.00 charged.
    with writing(api.engine) as conn:
        add_readings(conn, "A2-m01", [(local(2026, 3, 3), "0"), (local(2026, 3, 10), "40")])
    run_jobs(api)
    bal = api.get("vic", "/accounts/a2/balance").json()
    assert bal["balance"] == "80.00" and bal["currency"] == "CNY"
    rows = api.get("vic", "/accounts/a2/ledger").json()["items"]
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("80.00")
    assert sorted(r["kind"] for r in rows) == ["charge", "topup"]


def test_bad_input_is_a_clear_error_and_stores_nothing(api):
    for amount, status in (("1.005", 400), ("-5.00", 400), ("ten", 422), ("1000000000", 400)):
        r = api.post("olga", "/accounts/a2/topups", {"reference": f"R{amount}", "amount": amount})
        assert r.status_code == status, (amount, r.text)
    r = api.post(
        "olga",
        "/accounts/a2/topups",
        {"reference": "R", "amount": "1.00", "paid_at": "2026-03-10T10:00:00"},
    )
    assert r.status_code == 400 and "time zone" in r.json()["detail"]
    r = api.post(
        "ada",
        "/tariffs/bad",
        {
            "valid_from": "2026-04-01T00:00:00+08:00",
            "definition": {"kind": "tou", "prices": {}, "periods": []},
        },
    )
    assert r.status_code == 400 and "tariff" in r.json()["detail"]
    r = api.post(
        "ada",
        "/tariffs/res",
        {"valid_from": "2026-03-01T00:00:00+08:00", "definition": {"kind": "flat", "price": "0.6"}},
    )
    assert r.status_code == 409 and "effective date" in r.json()["detail"]
    r = api.post("ada", "/accounts", {"id": "x", "contacts": ["nosuch://what"]})
    assert r.status_code == 400
    assert api.get("vic", "/accounts/a2/ledger").json()["items"] == []


def test_a_runaway_balance_is_refused_before_the_ledger_sum_overflows(api):
    """A balance may not leave ±10¹² units (SQLite's SUM() raises past 2⁶³ micro-units)."""
    from headend.prepay import store

    now = datetime(2026, 3, 10, tzinfo=UTC)
    with writing(api.engine) as conn:  # years of the largest top-ups, straight into the ledger
        for i in range(1000):
            store.post(
                conn, "a2", "topup", 999_999_999_990_000, now, f"OLD-{i}", actor="t", now=now
            )
    ok = api.post("olga", "/accounts/a2/topups", {"reference": "FITS", "amount": "9.99"})
    assert ok.status_code == 201, ok.text
    r = api.post("olga", "/accounts/a2/topups", {"reference": "PAST", "amount": "999999999.99"})
    assert r.status_code == 400 and "out of range" in r.json()["detail"], r.text
    fee = {"kind": "fee", "amount": "999999999.99", "reference": "F", "reason": "test"}
    assert api.post("ada", "/accounts/a2/adjustments", fee).status_code == 201
    bal = api.get("vic", "/accounts/a2/balance").json()["balance"]
    assert Decimal(bal) == 1000 * Decimal("999999999.99") + Decimal("9.99") - Decimal(
        "999999999.99"
    )


def test_roles_and_area_scoping(api):
    body = {"reference": "P1", "amount": "5.00"}
    assert api.post("vic", "/accounts/a2/topups", body).status_code == 403  # viewers don't pay
    assert api.post("olga", "/accounts", {"id": "z"}).status_code == 403  # admins open accounts
    assert api.get("vera", "/accounts/a2").status_code == 200  # scoped to A2
    assert api.get("vera", "/accounts/a1").status_code == 403
    assert [a["id"] for a in api.get("vera", "/accounts").json()] == ["a2"]
    assert api.post("ola", "/accounts/a1/topups", body).status_code == 403
    assert api.post("ola", "/accounts/a2/topups", body).status_code == 201
    adj = {
        "kind": "adjustment",
        "reference": "ADJ-1",
        "amount": "-3.00",
        "reason": "meter read wrong",
        "period_from": "2026-02-01T00:00:00+08:00",
        "period_to": "2026-03-01T00:00:00+08:00",
    }
    assert api.post("olga", "/accounts/a2/adjustments", adj).status_code == 403
    assert api.post("sam", "/accounts/a2/adjustments", adj).status_code == 201
    assert api.post("sam", "/accounts/a2/adjustments", adj).status_code == 409
    assert api.get("vic", "/accounts/a2/balance").json()["balance"] == "2.00"
    assert api.get("sid", "/reconciliation", day="2026-03-10").status_code == 403  # scoped


def test_daily_reconciliation_report(api):
    for n, amount in enumerate(["10.00", "20.50"]):
        api.post(
            "olga",
            "/accounts/a2/topups",
            {"reference": f"W{n}", "amount": amount, "channel": "wechat"},
        )
    api.post(
        "olga", "/accounts/a1/topups", {"reference": "B0", "amount": "5.00", "channel": "bank"}
    )
    report = api.get("sam", "/reconciliation", day="2026-03-10").json()
    assert report["payments"] == 3 and report["received"] == report["credited"] == "35.500000"
    assert report["balanced"] is True and report["mismatches"] == []
    assert report["by_channel"]["wechat"] == {"count": 2, "received": "30.500000"}
    other = api.get("sam", "/reconciliation", day="2026-03-11").json()
    assert other["payments"] == 0


def test_postpaid_bill_from_daily_frozen_readings_and_arrears(api):
    r = api.post("ada", "/accounts", {"id": "pp", "mode": "postpaid", "language": "en"})
    assert r.status_code == 201
    api.post(
        "ada",
        "/accounts/pp/points",
        {"point": "P-A2-m02", "tariff": "res", "valid_from": "2026-02-01T00:00:00+08:00"},
    )
    with writing(api.engine) as conn:
        # Frozen values: February 100 kWh → bill 100 × 0.5 = 50.00; interval readings are ignored.
        add_readings(
            conn,
            "A2-m02",
            [(local(2026, 2, 1), "1000"), (local(2026, 3, 1), "1100")],
            kind="daily_frozen",
        )
        add_readings(conn, "A2-m02", [(local(2026, 2, 15), "1050")], kind="interval")
    run_jobs(api)
    [bill] = api.get("vic", "/accounts/pp/bills").json()
    assert bill["period"] == "2026-02" and Decimal(bill["amount"]) == Decimal("50.00")
    assert bill["overdue_unpaid"] is None  # due in 15 days
    api.clock.current = NOW + timedelta(days=16)
    run_jobs(api)
    [bill] = api.get("vic", "/accounts/pp/bills").json()
    assert Decimal(bill["overdue_unpaid"]) == Decimal("50.00")
    notes = api.get("vic", "/accounts/pp/notifications").json()
    assert notes == [] or all(n["template"] == "arrears" for n in notes)  # no contacts: none
    acct = api.get("vic", "/accounts/pp").json()
    assert acct["stage"] == "notice"
    api.post("olga", "/accounts/pp/topups", {"reference": "PP1", "amount": "50.00"})
    run_jobs(api)
    assert api.get("vic", "/accounts/pp/bills").json()[0]["overdue_unpaid"] is None
    assert api.get("vic", "/accounts/pp").json()["stage"] == "ok"
    _ = datetime.now(UTC)
