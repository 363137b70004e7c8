"""Schemathesis against the head-end's OpenAPI (SQLite, an admin token): no 5xx, conforming replies.

Bounded: ``MAX_EXAMPLES`` generated requests per operation and derandomized, so the run is
reproducible and stays well under a minute; ``TAIQU_API_FUZZ_RANDOM=1
TAIQU_API_FUZZ_EXAMPLES=200`` explores further.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from headend.app import create_app
from headend.auth import passwords
from headend.config import DatabaseSettings, Settings
from headend.db import make_engine
from headend.db.migrate import upgrade
from tests.headend.ops_support import PASSWORD, USERS, add_user, seed_archive

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration
MAX_EXAMPLES = int(os.environ.get("TAIQU_API_FUZZ_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[object, dict[str, str]]]:
    """The app on a seeded SQLite database and an admin's bearer header."""
    from argon2 import PasswordHasher

    old_secret = os.environ.get("TAIQU_HEADEND_SECRET")
    os.environ["TAIQU_HEADEND_SECRET"] = "s" * 40
    old_hasher = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    passwords._dummy_hash.cache_clear()
    db = DatabaseSettings(url=f"sqlite:///{tmp_path_factory.mktemp('api') / 'headend.db'}")
    engine = make_engine(db)
    upgrade(engine)
    seed_archive(engine)
    for name, (role, scope) in USERS.items():
        add_user(engine, name, role, scope)
    app = create_app(Settings(database=db), engine=engine, ingest=False)
    with TestClient(app) as client:
        r = client.post("/api/v1/auth/token", data={"username": "ada", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield app, {"Authorization": f"Bearer {r.json()['access_token']}"}
    engine.dispose()
    passwords._hasher = old_hasher
    passwords._dummy_hash.cache_clear()
    if old_secret is None:
        os.environ.pop("TAIQU_HEADEND_SECRET", None)
    else:
        os.environ["TAIQU_HEADEND_SECRET"] = old_secret


# Failures found by this run and not fixed yet: "METHOD /path": the text of the known failure.
# Their operations are still fuzzed; only that failure is tolerated.  None open.
KNOWN: dict[str, str] = {}
# 5xx this run found before, now refused by bounded parameter types (headend/api/bounds.py): each
# a 422 with FastAPI's error list naming the parameter.
OUT_OF_RANGE = [
    ("get", "/api/v1/audit?after=2734120969238486192125640704", None, "after"),
    ("get", "/api/v1/audit?since=0001-01-01T00:00:00Z", None, "since"),
    ("get", "/api/v1/analytics/lineloss?to=0001-01-01", None, "to"),
    ("get", "/api/v1/analytics/lineloss?from=9999-12-31", None, "from"),
    ("get", "/api/v1/analytics/areas/a1/trend?to=0001-01-01", None, "to"),
    ("get", "/api/v1/analytics/collection?to=0001-01-01&scope=gateway", None, "to"),
    ("get", "/api/v1/analytics/areas/a1/suspects?day=9999-12-31", None, "day"),
    ("get", "/api/v1/analytics/areas/a1/quality?day=0001-01-01", None, "day"),
    ("post", "/api/v1/analytics/recompute", {"from": "0001-01-01", "to": "2026-01-01"}, "from"),
    ("get", "/api/v1/prepay/accounts?limit=-129862842969402125423469175515381760", None, "limit"),
    ("get", "/api/v1/prepay/accounts?limit=0", None, "limit"),
    (
        "get",
        "/api/v1/prepay/accounts/analytics/ledger?after=-6094508313537956282368",
        None,
        "after",
    ),
    ("get", "/api/v1/prepay/accounts/analytics/ledger?after=9223372036854775808", None, "after"),
    ("get", "/api/v1/prepay/reconciliation?day=9999-12-31", None, "day"),
]


def fuzz_operation(operation, admin: dict[str, str], failures: list[str]) -> int:
    """Send ``MAX_EXAMPLES`` generated requests to one operation; how many were sent."""
    sent = [0]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not os.environ.get("TAIQU_API_FUZZ_RANDOM"),  # make test: reproducible
    )
    @given(operation.as_strategy())
    def run(case) -> None:
        sent[0] += 1
        try:
            case.call_and_validate(
                headers=admin, checks=[not_a_server_error, response_schema_conformance]
            )
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup, or the app's own (500)
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            failures.append(
                f"{operation.label}: {type(exc).__name__}: {text[:300]}\n    "
                f"{case.as_curl_command()}"
            )
            raise

    try:
        run()
    except (Exception, BaseExceptionGroup):  # recorded above, with the shrunk case last
        pass
    return sent[0]


def test_no_server_error_and_responses_match_the_schema(api) -> None:
    """Every operation, ``MAX_EXAMPLES`` positive requests each; all failures reported together."""
    app, admin = api
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    sent = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        sent[operation.label] = fuzz_operation(operation, admin, failures)
    assert len(sent) > 10 and all(sent.values()), sent
    # one line per operation: the last (shrunk) failing case
    last = {
        label: f
        for f in failures
        if (label := f.split(": ", 1)[0]) not in KNOWN or KNOWN[label] not in f
    }
    assert not last, f"{len(last)} operations failed:\n" + "\n".join(last.values())


@pytest.mark.parametrize(
    ("method", "url", "body", "name"), OUT_OF_RANGE, ids=[r[1][:56] for r in OUT_OF_RANGE]
)
def test_out_of_range_parameters_are_422_naming_the_parameter(api, method, url, body, name):
    app, admin = api
    with TestClient(app, raise_server_exceptions=False) as client:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(client, method)(url, headers=admin, **kwargs)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert isinstance(errors, list) and [e["loc"][-1] for e in errors] == [name], errors
    assert errors[0]["type"] in {"greater_than_equal", "less_than_equal"}, errors


@pytest.mark.parametrize("what", ["suspects", "quality"])
def test_csv_of_a_non_latin_area_names_the_file_in_rfc_5987(api, what):
    app, admin = api
    area = '台区-东 7"x'
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get(f"/api/v1/analytics/areas/{area}/{what}?format=csv", headers=admin)
    assert r.status_code == 200, r.text
    header = r.headers["content-disposition"]
    fallback, encoded = header.split("; filename*=UTF-8''")
    assert fallback == f'attachment; filename="{what}-__-_ 7_x.csv"'
    assert unquote(encoded) == f"{what}-{area}.csv"
    assert header.isascii()


def test_prefs_422_is_the_validation_error_list(api) -> None:
    """Found by this run: the 422 carried a string detail where the schema promises a list."""
    app, admin = api
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.put(
            "/api/v1/me/prefs", json={"language": "en", "timezone": "analytics"}, headers=admin
        )
    assert r.status_code == 422, r.text
    assert [e["loc"][-1] for e in r.json()["detail"]] == ["timezone"], r.text
