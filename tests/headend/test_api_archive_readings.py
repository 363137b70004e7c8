"""The API suite, run on SQLite and on PostgreSQL: archive CRUD, readings, events, scoping, errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from headend.app import create_app
from headend.auth import users as users_db
from headend.config import Settings
from headend.db import make_engine
from headend.db.engine import writing
from headend.db.tables import archive_versions, mqtt_outbox
from headend.ingest.store import Ingestor
from protocols.uplink import ArchivePush, decode
from tests.headend.gen import T0, batch, cover_event, publishable, reading

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SECRET = "x" * 48
V1 = "/api/v1"


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", SECRET)
    engine = make_engine(settings.database)
    app = create_app(settings, engine=engine, ingest=False)
    with TestClient(app) as c:
        with writing(engine) as conn:
            users_db.create(
                conn, "root", "admin", "pw-root-123456", actor="test", now=datetime.now(UTC)
            )
        c.headers["Authorization"] = "Bearer " + token(c, "root", "pw-root-123456")
        c.app_engine = engine  # type: ignore[attr-defined]
        yield c
    engine.dispose()


def token(c: TestClient, name: str, password: str) -> str:
    r = c.post(f"{V1}/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def engine_of(c: TestClient) -> Engine:
    return c.app_engine  # type: ignore[attr-defined]


def ok(r, code: int = 200):
    assert r.status_code == code, r.text
    return (
        r.json()
        if r.content and r.headers.get("content-type", "").startswith("application/json")
        else r
    )


def seed(c: TestClient, meters: int = 3, since: datetime = T0) -> list[str]:
    """Gateway gw-0001, area A1 and ``meters`` meters in the archive from ``since`` (readings are
    stored only for a meter in the gateway's archive at the reading's time)."""
    ok(
        c.post(
            f"{V1}/gateways",
            json={"id": "gw-0001", "name": "north"},
            params={"valid_from": since.isoformat()},
        ),
        201,
    )
    ok(
        c.post(
            f"{V1}/areas",
            json={"id": "A1", "name": "Area 1", "gateway": "gw-0001"},
            params={"valid_from": since.isoformat()},
        ),
        201,
    )
    ids = [f"2026{i:08d}" for i in range(1, meters + 1)]
    for n, mid in enumerate(ids):
        body = {
            "id": mid,
            "area": "A1",
            "bus": "bus1",
            "address": mid,
            "multiplier": "40" if n == 0 else "1",
            "role": "area_total" if n == 0 else "customer",
            "customer": f"C{n}",
        }
        ok(c.post(f"{V1}/meters", json=body, params={"valid_from": since.isoformat()}), 201)
    return ids


def ingest(c: TestClient, *batches) -> None:
    ing = Ingestor()
    with writing(engine_of(c)) as conn:
        for b in batches:
            ing.handle(conn, *publishable(b), datetime.now(UTC))


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = ok(client.get("/openapi.json"))
    for path in (
        "/api/v1/meters/{meter_id}/readings",
        "/api/v1/areas/{area_id}/latest",
        "/api/v1/events",
        "/api/v1/gateways",
        "/api/v1/auth/token",
    ):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_archive_crud_and_effective_dating(client: TestClient) -> None:
    ids = seed(client)
    area = ok(client.get(f"{V1}/areas/A1"))
    assert area["total_meter"] == ids[0] and area["gateway"] == "gw-0001"
    t1 = T0 + timedelta(days=10)
    changed = ok(
        client.patch(
            f"{V1}/meters/{ids[1]}",
            json={"multiplier": "2.5", "tariff_category": "residential"},
            params={"at": t1.isoformat()},
        )
    )
    assert changed["multiplier"] == "2.5" and changed["valid_from"].startswith("2026-12-04")
    before = ok(
        client.get(f"{V1}/meters/{ids[1]}", params={"at": (t1 - timedelta(seconds=1)).isoformat()})
    )
    assert before["multiplier"] == "1"
    hist = ok(client.get(f"{V1}/meters/{ids[1]}/history"))
    assert [v["multiplier"] for v in hist["versions"]] == ["1", "2.5"]
    # a change before the current version's start is refused, not rewritten
    r = client.patch(f"{V1}/meters/{ids[1]}", json={"customer": "x"}, params={"at": T0.isoformat()})
    assert r.status_code == 409 and "after the current version" in r.json()["detail"]
    ok(client.delete(f"{V1}/meters/{ids[2]}", params={"at": t1.isoformat()}), 204)
    assert [m["id"] for m in ok(client.get(f"{V1}/meters"))] == ids[:2]
    assert client.get(f"{V1}/meters/{ids[2]}").status_code == 404


def test_archive_validation_errors_are_4xx_with_reasons(client: TestClient) -> None:
    seed(client)
    r = client.post(
        f"{V1}/meters",
        json={"id": "202699999999", "area": "nowhere", "bus": "b", "address": "202699999999"},
    )
    assert r.status_code == 400 and "area 'nowhere' does not exist" in r.json()["detail"]
    r = client.post(
        f"{V1}/meters", json={"id": "202699999999", "area": "A1", "bus": "b", "address": "12"}
    )
    assert r.status_code == 422 and "12 digits" in r.text
    r = client.post(
        f"{V1}/meters",
        json={
            "id": "202699999999",
            "area": "A1",
            "bus": "b",
            "address": "202699999999",
            "multiplier": "-3",
        },
    )
    assert r.status_code == 422 and "positive" in r.text
    r = client.post(
        f"{V1}/meters",
        json={
            "id": "202699999999",
            "area": "A1",
            "bus": "b",
            "address": "202699999999",
            "role": "area_total",
        },
    )
    assert r.status_code == 409 and "already has an area total meter" in r.json()["detail"]
    r = client.post(
        f"{V1}/meters",
        json={"id": "202600000001", "area": "A1", "bus": "b", "address": "202600000001"},
    )
    assert r.status_code == 409
    assert client.get(f"{V1}/areas/nope").status_code == 404
    assert (
        client.get(f"{V1}/meters", params={"at": "2026-01-01T00:00:00"}).status_code == 400
    )  # naive time
    assert client.get(f"{V1}/meters", params={"at": "yesterday"}).status_code == 422


def test_archive_changes_are_audited(client: TestClient) -> None:
    seed(client, meters=1)
    entries = ok(client.get(f"{V1}/audit"))
    items = entries["items"] if isinstance(entries, dict) else entries
    actions = {e["action"] for e in items}
    assert {"archive.gateway_create", "archive.area_create", "archive.meter_create"} <= actions


def test_archive_is_pushed_as_versions_and_reported_version_is_shown(client: TestClient) -> None:
    ids = seed(client, meters=2)
    with engine_of(client).connect() as conn:
        versions = conn.execute(
            select(archive_versions.c.version, archive_versions.c.meters).order_by(
                archive_versions.c.version
            )
        ).all()
        pending = conn.execute(select(mqtt_outbox).order_by(mqtt_outbox.c.id)).all()
    assert [tuple(v) for v in versions] == [
        (1, 0),
        (2, 1),
        (3, 2),
    ]  # area created, then one per meter
    last = decode(pending[-1].payload, ArchivePush)
    assert pending[-1].retain and pending[-1].topic == "taiqu/v1/gw-0001/down/archive"
    assert [m.id for m in last.meters] == ids and last.version == 3
    # an unchanged archive is not re-issued
    ok(client.patch(f"{V1}/meters/{ids[1]}", json={"customer": "renamed"}))
    gw = ok(client.get(f"{V1}/gateways/gw-0001"))
    assert gw["archive"]["version"] == 3 and gw["archive"]["reported"] is None
    from protocols.uplink import Status, Topics, encode

    with writing(engine_of(client)) as conn:
        Ingestor().handle(
            conn,
            Topics("gw-0001").status,
            encode(Status(gateway="gw-0001", state="online", archive_version=3)),
            datetime.now(UTC),
        )
    gw = ok(client.get(f"{V1}/gateways/gw-0001"))
    assert (
        gw["archive"] == {**gw["archive"], "reported": 3, "in_sync": True} and gw["online"] is True
    )
    assert ok(client.get(f"{V1}/gateways/gw-0001/sessions"))[0]["state"] == "online"


def test_meter_replacement_records_both_readings_and_keeps_the_point(client: TestClient) -> None:
    ids = seed(client, meters=2)
    at = T0 + timedelta(days=20)
    body = {
        "new": {"id": "202688888888", "area": "A1", "bus": "bus1", "address": "202688888888"},
        "at": at.isoformat(),
        "old_final": {"energy.active.import.total": "1523.40"},
        "new_start": {"energy.active.import.total": "0.10"},
        "reason": "burnt terminal",
    }
    out = ok(client.post(f"{V1}/meters/{ids[1]}/replace", json=body), 201)
    assert out["new"]["point"] == ids[1]
    hist = ok(client.get(f"{V1}/meters/202688888888/history"))
    (rep,) = hist["replacements"]
    assert rep["old_meter"] == ids[1] and rep["old_final"] == {
        "energy.active.import.total": "1523.40"
    }
    assert rep["new_start"] == {"energy.active.import.total": "0.10"}
    assert client.get(f"{V1}/meters/{ids[1]}").status_code == 404  # retired now
    bad = {**body, "old_final": {"energy.bogus": "1"}}
    assert client.post(f"{V1}/meters/202688888888/replace", json=bad).status_code == 422


def test_csv_export_import_round_trip_and_all_or_nothing(client: TestClient) -> None:
    ids = seed(client, meters=2)
    text = ok(client.get(f"{V1}/meters/export.csv")).text
    assert text.splitlines()[0].startswith("id,point,area")
    edited = (
        text.replace(",C1,", ",Customer One,")
        + "202677777777,,A1,bus2,dlt645-2007,202677777777,,1,customer,C9,,false\n"
    )
    report = ok(
        client.post(
            f"{V1}/meters/import", content=edited.encode(), headers={"content-type": "text/csv"}
        )
    )
    assert report == {"created": ["202677777777"], "updated": [ids[1]], "unchanged": 1}
    bad = edited + "202666666666,,A1,bus2,dlt645-2007,123,,1,customer,,,false\n"
    r = client.post(
        f"{V1}/meters/import", content=bad.encode(), headers={"content-type": "text/csv"}
    )
    assert (
        r.status_code == 400
        and "line 5" in r.json()["detail"]
        and "12 digits" in r.json()["detail"]
    )
    assert len(ok(client.get(f"{V1}/meters"))) == 3  # nothing of the bad file applied
    r = client.post(
        f"{V1}/meters/import", content=b"who,what\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 400 and "missing columns" in r.json()["detail"]


def test_readings_pages_csv_and_multiplier(client: TestClient) -> None:
    ids = seed(client, meters=2)
    ingest(client, batch("gw-0001", "ab" * 8, 0, [reading(m, s) for s in range(6) for m in ids]))
    url = f"{V1}/meters/{ids[0]}/readings"
    q = "energy.active.import.total"
    page1 = ok(client.get(url, params={"quantity": q, "limit": 4}))
    assert len(page1["items"]) == 4 and page1["next"]
    page2 = ok(client.get(url, params={"quantity": q, "limit": 4, "cursor": page1["next"]}))
    assert len(page2["items"]) == 2 and page2["next"] is None
    times = [i["time"] for i in page1["items"] + page2["items"]]
    assert times == sorted(times) and len(set(times)) == 6
    first = page1["items"][0]
    assert first["multiplier"] == "40"
    from decimal import Decimal

    assert Decimal(first["value"]) == Decimal(first["register"]) * 40
    window = ok(
        client.get(
            url,
            params={
                "quantity": q,
                "from": (T0 + timedelta(minutes=15)).isoformat(),
                "to": (T0 + timedelta(minutes=45)).isoformat(),
            },
        )
    )
    assert len(window["items"]) == 2
    csv_ = client.get(url, params={"quantity": q, "format": "csv"})
    assert csv_.headers["content-type"].startswith("text/csv") and len(csv_.text.splitlines()) == 7
    all_q = ok(client.get(url))
    assert len(all_q["items"]) == 6 * 5


def test_readings_invalid_requests_are_4xx(client: TestClient) -> None:
    ids = seed(client, meters=1)
    url = f"{V1}/meters/{ids[0]}/readings"
    assert client.get(url, params={"quantity": "energy.nonsense"}).status_code == 400
    assert (
        client.get(
            url, params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        ).status_code
        == 400
    )
    assert client.get(url, params={"cursor": "%%%"}).status_code == 400
    assert client.get(url, params={"limit": 0}).status_code == 422
    assert client.get(url, params={"format": "xml"}).status_code == 422
    assert client.get(url, params={"kind": "weekly"}).status_code == 422
    assert client.get(f"{V1}/meters/999999999999/readings").status_code == 404


def test_latest_of_an_area(client: TestClient) -> None:
    since = T0 - timedelta(days=365)  # in the archive before the oldest reading (180 days)
    ids = seed(client, meters=6, since=since)
    ingest(
        client, batch("gw-0001", "ab" * 8, 0, [reading(m, s) for s in range(3) for m in ids[:2]])
    )
    # read a month ago (the quarter's probe), half a year ago, or stamped days ahead by a
    # gateway whose clock runs fast (both found by the last, unbounded probe)
    ahead = (datetime.now(UTC) + timedelta(days=3) - T0) // timedelta(minutes=15)
    old = [reading(ids[2], -30 * 96), reading(ids[3], ahead), reading(ids[4], -180 * 96)]
    ingest(client, batch("gw-0001", "ab" * 8, 6, old))
    out = ok(client.get(f"{V1}/areas/A1/latest"))
    assert out["meters"] == 6 and out["read"] == 5 and out["missing"] == [ids[5]]
    newest = {i["meter"]: i for i in out["items"]}
    assert newest[ids[1]]["time"].startswith("2026-11-24T00:30")
    assert newest[ids[2]]["time"].startswith("2026-10-25T00:00")
    assert datetime.fromisoformat(newest[ids[3]]["time"]) > datetime.now(UTC) + timedelta(days=2)
    assert newest[ids[4]]["time"].startswith("2026-05-28T00:00")
    assert newest[ids[0]]["role"] == "area_total"
    as_of = ok(
        client.get(f"{V1}/areas/A1/latest", params={"at": (T0 + timedelta(minutes=20)).isoformat()})
    )
    assert [i["time"][:16] for i in as_of["items"]] == [
        "2026-11-24T00:15",
        "2026-11-24T00:15",
        "2026-10-25T00:00",
        "2026-05-28T00:00",
    ]
    assert as_of["missing"] == [ids[3], ids[5]]
    before = client.get(
        f"{V1}/areas/A1/latest", params={"at": (since - timedelta(days=1)).isoformat()}
    )
    assert before.status_code == 404  # the area is in force from ``since`` on
    assert client.get(f"{V1}/areas/A1/latest", params={"quantity": "bogus"}).status_code == 400
    assert client.get(f"{V1}/areas/ZZ/latest").status_code == 404


def test_events_filters_and_pages(client: TestClient) -> None:
    ids = seed(client, meters=2)
    ingest(
        client,
        batch(
            "gw-0001",
            "ab" * 8,
            0,
            [cover_event(ids[0], n) for n in range(3)] + [cover_event(ids[1], 5)],
        ),
    )
    all_ = ok(client.get(f"{V1}/events"))
    assert len(all_["items"]) == 4
    mine = ok(client.get(f"{V1}/events", params={"meter": ids[0], "limit": 2}))
    assert len(mine["items"]) == 2 and mine["next"]
    rest = ok(
        client.get(f"{V1}/events", params={"meter": ids[0], "limit": 2, "cursor": mine["next"]})
    )
    assert len(rest["items"]) == 1
    win = ok(
        client.get(
            f"{V1}/events",
            params={
                "type": "meter_cover_open",
                "from": (T0 + timedelta(hours=1)).isoformat(),
                "to": (T0 + timedelta(hours=3)).isoformat(),
            },
        )
    )
    assert [e["start"][:13] for e in win["items"]] == ["2026-11-24T01", "2026-11-24T02"]
    assert len(ok(client.get(f"{V1}/events", params={"area": "A1"}))["items"]) == 4
    assert client.get(f"{V1}/events", params={"type": "earthquake"}).status_code == 422


def test_area_scoped_viewer_sees_only_its_area_and_cannot_write(client: TestClient) -> None:
    ids = seed(client, meters=2)
    since = {"valid_from": T0.isoformat()}  # in the archive when its cover event happens
    ok(client.post(f"{V1}/areas", json={"id": "A2", "gateway": "gw-0001"}, params=since), 201)
    ok(
        client.post(
            f"{V1}/meters",
            json={"id": "202655555555", "area": "A2", "bus": "b", "address": "202655555555"},
            params=since,
        ),
        201,
    )
    ok(
        client.post(
            f"{V1}/users",
            json={"name": "vic", "role": "viewer", "password": "pw-vic-123456", "areas": ["A2"]},
        ),
        201,
    )
    ingest(
        client,
        batch("gw-0001", "ab" * 8, 0, [cover_event(ids[0], 1), cover_event("202655555555", 2)]),
    )
    viewer = {"Authorization": "Bearer " + token(client, "vic", "pw-vic-123456")}
    assert [m["id"] for m in ok(client.get(f"{V1}/meters", headers=viewer))] == ["202655555555"]
    assert [a["id"] for a in ok(client.get(f"{V1}/areas", headers=viewer))] == ["A2"]
    assert client.get(f"{V1}/meters/{ids[0]}", headers=viewer).status_code == 403
    assert client.get(f"{V1}/meters/{ids[0]}/readings", headers=viewer).status_code == 403
    assert client.get(f"{V1}/areas/A1/latest", headers=viewer).status_code == 403
    assert [e["meter"] for e in ok(client.get(f"{V1}/events", headers=viewer))["items"]] == [
        "202655555555"
    ]
    r = client.post(
        f"{V1}/meters",
        headers=viewer,
        json={"id": "202644444444", "area": "A2", "bus": "b", "address": "202644444444"},
    )
    assert r.status_code == 403
    assert client.get(f"{V1}/meters").status_code == 200
    assert client.get(f"{V1}/meters", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(f"{V1}/meters", headers={"Authorization": ""}).status_code == 401


def test_ingest_admin_lists_dead_letters_and_resolves_unregistered(client: TestClient) -> None:
    seed(client, meters=1)
    with writing(engine_of(client)) as conn:
        Ingestor().handle(conn, "taiqu/v1/gw-0001/up/data", b"{not json", datetime.now(UTC))
    ingest(client, batch("gw-0001", "ab" * 8, 0, [reading("202611111111", 0)]))
    (dead,) = ok(client.get(f"{V1}/ingest/dead-letters"))
    assert "JSON" in dead["reason"] and dead["size"] == 9
    (unreg,) = ok(client.get(f"{V1}/ingest/unregistered"))
    assert unreg["meter"] == "202611111111"
    ok(
        client.post(
            f"{V1}/ingest/unregistered/gw-0001/202611111111/resolve",
            json={"resolution": "wrong bus, removed"},
        )
    )
    assert ok(client.get(f"{V1}/ingest/unregistered")) == []
    assert (
        client.post(
            f"{V1}/ingest/unregistered/gw-0001/nope/resolve", json={"resolution": "x"}
        ).status_code
        == 404
    )
    (stream,) = ok(client.get(f"{V1}/ingest/streams"))
    assert stream["upto"] == 0
