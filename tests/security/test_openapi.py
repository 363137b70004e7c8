"""Schemathesis against the head-end's OpenAPI (SQLite, an admin token): no 5xx, conforming replies.

Bounded: ``MAX_EXAMPLES`` generated requests per operation and derandomized, so the run is
reproducible and stays well under a minute; ``TAIQU_API_FUZZ_RANDOM=1
TAIQU_API_FUZZ_EXAMPLES=200`` explores further.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

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


# 5xx found by this run in code owned by others (reported; each pinned by a strict xfail below, so
# the entry must go when its fix lands).  Their operations are still fuzzed; only the failure is
# tolerated, and only if it is the known one.
KNOWN = {
    "GET /api/v1/audit": "OverflowError",  # after=2**91: int too large for SQLite
    "GET /api/v1/analytics/lineloss": "OverflowError",  # to=0001-01-01: date - 1 day
    "GET /api/v1/analytics/collection": "OverflowError",  # to=0001-01-01
    "POST /api/v1/analytics/recompute": "OverflowError",  # from=to=0001-01-01
    "GET /api/v1/analytics/areas/{area}/suspects": "UnicodeEncodeError",  # CSV file name header
    "GET /api/v1/analytics/areas/{area}/quality": "UnicodeEncodeError",
    "GET /api/v1/prepay/accounts": "OverflowError",  # limit=-2**116: no lower bound
    "GET /api/v1/prepay/accounts/{account_id}/ledger": "OverflowError",  # after=-2**72
    # a 422 whose detail is a string, where the schema promises FastAPI's validation-error list
    "PUT /api/v1/me/prefs": "Response violates schema",
}
REPRODUCERS = [
    ("get", "/api/v1/audit?after=2734120969238486192125640704", None),
    ("get", "/api/v1/analytics/lineloss?to=0001-01-01", None),
    ("get", "/api/v1/analytics/collection?to=0001-01-01&scope=gateway", None),
    ("post", "/api/v1/analytics/recompute", {"from": "0001-01-01", "to": "0001-01-01"}),
    ("get", "/api/v1/analytics/areas/%F1%BB%82%91/suspects?format=csv", None),
    ("get", "/api/v1/analytics/areas/%F1%BB%82%91/quality?format=csv", None),
    ("get", "/api/v1/prepay/accounts?limit=-129862842969402125423469175515381760", None),
    ("get", "/api/v1/prepay/accounts/analytics/ledger?after=-6094508313537956282368", None),
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


@pytest.mark.xfail(strict=True, reason="a known 5xx (see KNOWN): remove both entries when fixed")
@pytest.mark.parametrize(
    ("method", "url", "body"), REPRODUCERS, ids=[r[1][:48] for r in REPRODUCERS]
)
def test_known_server_errors(api, method, url, body) -> None:
    app, admin = api
    with TestClient(app, raise_server_exceptions=False) as client:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(client, method)(url, headers=admin, **kwargs)
    assert r.status_code < 500, r.text


@pytest.mark.xfail(strict=True, reason="PUT /me/prefs 422 detail is a string (see KNOWN)")
def test_known_schema_violation(api) -> None:
    app, admin = api
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.put(
            "/api/v1/me/prefs", json={"language": "en", "timezone": "analytics"}, headers=admin
        )
    assert r.status_code != 422 or isinstance(r.json()["detail"], list), r.text
