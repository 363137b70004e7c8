"""The hash-chained audit log: appends, verification, tamper detection, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from headend import audit
from headend.audit.chain import GENESIS, canonical, row_hash
from headend.db import writing
from headend.db.ops_tables import audit_log

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def fill(engine, n, start=0):
    ids = []
    for i in range(start, start + n):
        with writing(engine) as conn:
            ids.append(
                audit.append(
                    conn,
                    f"user{i % 3}",
                    "command.create",
                    f"c{i}",
                    {"meters": [f"m{i}"], "n": i},
                    at=T0 + timedelta(seconds=i),
                )
            )
    return ids


def unprotect(conn):
    """What an attacker with DDL rights would do first: drop the append-only triggers."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")


def test_appends_get_consecutive_ids_and_the_chain_verifies(engine):
    with writing(engine) as conn:
        assert audit.verify(conn).ok  # an empty log verifies
    assert fill(engine, 5) == [1, 2, 3, 4, 5]
    with writing(engine) as conn:
        result = audit.verify(conn)
        rows = audit.entries(conn)
    assert result.ok and result.rows == 5 and result.head_id == 5
    assert rows[0].prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert result.head_hash == rows[-1].hash
    assert rows[2].detail == '{"meters":["m2"],"n":2}'
    assert rows[2].at == T0 + timedelta(seconds=2)


def test_an_append_rolls_back_with_its_transaction(engine):
    fill(engine, 2)
    with pytest.raises(RuntimeError), writing(engine) as conn:
        audit.append(conn, "alice", "command.create", "c9")
        raise RuntimeError("the change it records failed")
    with writing(engine) as conn:
        assert audit.append(conn, "alice", "command.create", "c10") == 3
        assert audit.verify(conn).ok


def test_the_log_refuses_update_and_delete(engine):
    fill(engine, 2)
    with pytest.raises(DBAPIError, match="append-only"), writing(engine) as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 1).values(actor="mallory"))
    with pytest.raises(DBAPIError, match="append-only"), writing(engine) as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == 2))
    with writing(engine) as conn:
        assert audit.verify(conn).ok and audit.count(conn) == 2


def test_an_altered_row_is_reported_as_the_first_broken_one(engine):
    fill(engine, 6)
    with writing(engine) as conn:
        unprotect(conn)
        conn.execute(update(audit_log).where(audit_log.c.id == 4).values(actor="mallory"))
    with writing(engine) as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert result.broken_id == 4 and "altered" in (result.problem or "")
    assert result.rows == 3


def test_a_rehashed_row_breaks_the_link_to_its_successor(engine):
    fill(engine, 4)
    with writing(engine) as conn:
        unprotect(conn)
        row = conn.execute(select(audit_log).where(audit_log.c.id == 2)).one()
        forged = row_hash(
            row.prev_hash,
            id=2,
            at=row.at,
            actor="mallory",
            action=row.action,
            subject=row.subject,
            detail=row.detail,
        )
        conn.execute(
            update(audit_log).where(audit_log.c.id == 2).values(actor="mallory", hash=forged)
        )
    with writing(engine) as conn:
        result = audit.verify(conn)
    assert not result.ok and result.broken_id == 3 and "prev_hash" in (result.problem or "")


def test_deleted_rows_are_reported(engine):
    fill(engine, 5)
    with writing(engine) as conn:
        unprotect(conn)
        conn.execute(delete(audit_log).where(audit_log.c.id == 3))
    with writing(engine) as conn:
        result = audit.verify(conn)
    assert not result.ok and result.broken_id == 4 and "row 3 is missing" in (result.problem or "")


def test_a_truncated_tail_is_reported(engine):
    fill(engine, 5)
    with writing(engine) as conn:
        unprotect(conn)
        conn.execute(delete(audit_log).where(audit_log.c.id >= 4))
    with writing(engine) as conn:
        result = audit.verify(conn)
    assert not result.ok and result.broken_id == 4 and "truncated" in (result.problem or "")


def test_concurrent_appends_from_many_connections_keep_one_chain(engine):
    threads, per_thread = 6, 15
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(per_thread):
                with writing(engine) as conn:
                    audit.append(conn, f"instance{k}", "command.create", f"c{k}.{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    with writing(engine) as conn:
        result = audit.verify(conn)
        subjects = {e.subject for e in audit.entries(conn, limit=1000)}
    assert result.ok and result.rows == threads * per_thread
    assert len(subjects) == threads * per_thread


def test_entries_filter_and_page(engine):
    fill(engine, 9)
    with writing(engine) as conn:
        audit.append(conn, "bob", "auth.login_failed", "bob", at=T0 + timedelta(hours=1))
        page = audit.entries(conn, after=3, limit=2)
        assert [e.id for e in page] == [4, 5]
        assert {e.actor for e in audit.entries(conn, actor="user1")} == {"user1"}
        assert [e.id for e in audit.entries(conn, action="auth.")] == [10]
        assert [e.id for e in audit.entries(conn, subject="c2")] == [3]
        since = audit.entries(conn, since=T0 + timedelta(seconds=7))
        assert [e.id for e in since] == [8, 9, 10]


def test_long_fields_are_clipped_not_refused(sqlite_engine):
    with writing(sqlite_engine) as conn:
        audit.append(conn, "a" * 100, "command.create", "s" * 500, {"x": "y" * 5000})
        entry = audit.entries(conn)[0]
        assert len(entry.actor) == 64 and len(entry.subject) == 200
        assert audit.verify(conn).ok


def test_canonical_json_is_order_independent_and_types_are_stable():
    a = canonical({"b": 1, "a": [Decimal("1.50"), T0], "c": {"z": 1, "y": "台区"}})
    b = canonical({"c": {"y": "台区", "z": 1}, "a": [Decimal("1.50"), T0], "b": 1})
    assert a == b == '{"a":["1.50","2026-03-10T02:00:00.000000Z"],"b":1,"c":{"y":"台区","z":1}}'
    with pytest.raises(TypeError, match="not JSON-able"):
        canonical({"x": object()})


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="aware"):
        row_hash(
            GENESIS, id=1, at=datetime(2026, 1, 1), actor="a", action="b", subject="c", detail="{}"
        )


FIELDS = st.fixed_dictionaries(
    {
        "id": st.integers(1, 10**9),
        "at": st.datetimes(timezones=st.just(UTC)),
        "actor": st.text(max_size=20),
        "action": st.text(max_size=20),
        "subject": st.text(max_size=20),
        "detail": st.text(max_size=40),
    }
)


@given(FIELDS, FIELDS, st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_the_hash_covers_every_field_and_the_previous_hash(a, b, prev):
    same = row_hash(prev, **a) == row_hash(prev, **b)
    assert same == (a == b)
    assert row_hash(prev, **a) != row_hash(GENESIS if prev != GENESIS else "f" * 64, **a)
