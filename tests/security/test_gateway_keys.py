"""Gateway signing keys at enrolment: generated into the bundle, registered, rotated (issue 19)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.migrate import upgrade
from headend.db.tables import gateway_keys
from headend.security import cli
from headend.security.enrol import BrokerFiles, enrol_gateway
from headend.security.errors import EnrolmentError
from headend.security.gateway_keys import current, register
from protocols.uplink.envelope import key_id, raw_public

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _enrol(tmp_path: Path, engine: Engine | None, **kw):
    return enrol_gateway(
        "gw-0007", broker_dir=tmp_path / "b", out_dir=tmp_path / "o", now=NOW, engine=engine, **kw
    )


def test_enrolment_registers_the_bundles_key_and_re_enrolment_revokes_it(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    first = _enrol(tmp_path, sqlite_engine)
    pem = first.bundle / "gateway-key.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600 and first.registered
    private = load_pem_private_key(pem.read_bytes(), None)
    assert first.public_key == raw_public(private.public_key())  # type: ignore[arg-type]
    with sqlite_engine.connect() as conn:
        assert current(conn, "gw-0007") == {first.key_id: first.public_key}
    with pytest.raises(EnrolmentError, match="--replace"):  # nothing revoked by a refused call
        enrol_gateway(
            "gw-0007", broker_dir=tmp_path / "b", out_dir=tmp_path / "o2", now=NOW,
            engine=sqlite_engine,
        )  # fmt: skip
    with sqlite_engine.connect() as conn:
        assert list(current(conn, "gw-0007")) == [first.key_id]
    again = _enrol(tmp_path, sqlite_engine, replace=True)
    assert again.key_id != first.key_id and again.key_id == key_id(again.public_key)
    with sqlite_engine.connect() as conn:
        assert list(current(conn, "gw-0007")) == [again.key_id]
        rows = {r.key_id: r.revoked for r in conn.execute(select(gateway_keys))}
    assert rows == {first.key_id: NOW, again.key_id: None}


def test_registering_a_bad_key_or_id_is_refused(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn:
        with pytest.raises(EnrolmentError, match="Ed25519"):
            register(conn, "gw-1", b"\x01" * 31, NOW)
        with pytest.raises(EnrolmentError, match="gateway id"):
            register(conn, "gw/1", b"\x01" * 32, NOW)


def test_one_key_never_signs_for_two_gateways_nor_comes_back_revoked(
    sqlite_engine: Engine,
) -> None:
    """Found by review: ``register`` took gw-1's public key for gw-2 too (then whoever holds it
    signs as both), and re-registering a revoked key failed with the database's IntegrityError."""
    first, second = (raw_public(Ed25519PrivateKey.generate().public_key()) for _ in range(2))
    with sqlite_engine.begin() as conn:
        kid = register(conn, "gw-1", first, NOW)
        with pytest.raises(EnrolmentError, match="registered for gateway gw-1"):
            register(conn, "gw-2", first, NOW)
        register(conn, "gw-1", second, NOW)  # revokes the first
        with pytest.raises(EnrolmentError, match=f"key {kid} of gw-1 was revoked"):
            register(conn, "gw-1", first, NOW)
        assert list(current(conn, "gw-2")) == []


def test_without_a_signing_key_the_bundle_has_none(tmp_path: Path) -> None:
    result = _enrol(tmp_path, None, signing_key=False)
    assert not (result.bundle / "gateway-key.pem").exists() and result.key_id == ""
    assert "signing_key_file" not in (result.bundle / "gateway-security.toml").read_text()


def test_cli_registers_in_the_configured_database_and_never_creates_one(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    runner = CliRunner()
    base = ["enrol-gateway", "gw-9", "--broker-dir", str(tmp_path / "b"),
            "--bundle-dir", str(tmp_path / "o"), "--keys-dir", str(tmp_path / "k"),
            "--ca-dir", str(tmp_path / "ca")]  # fmt: skip
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "nowhere.db"}"\n')
    r = runner.invoke(cli.app, [*base, "-c", str(missing)])
    assert r.exit_code == 2 and "does not exist" in r.output and "migrate" in r.output
    assert not (tmp_path / "nowhere.db").exists()
    assert BrokerFiles(tmp_path / "b").passwd.entries() == {}  # nothing half-done
    config = tmp_path / "headend.toml"
    config.write_text(f'[database]\nurl = "{sqlite_engine.url.render_as_string()}"\n')
    r = runner.invoke(cli.app, [*base, "-c", str(config)])
    assert r.exit_code == 0, r.output
    assert "registered with the head-end" in r.output
    with sqlite_engine.connect() as conn:
        kid = next(iter(current(conn, "gw-9")))
    assert kid in r.output
    r = runner.invoke(
        cli.app, ["revoke-gateway", "gw-9", "--broker-dir", str(tmp_path / "b"), "-c", str(config)]
    )
    assert r.exit_code == 0 and "1 signing key(s) revoked" in r.output
    with sqlite_engine.connect() as conn:
        assert current(conn, "gw-9") == {}


def test_gateway_keys_lists_who_would_be_refused(tmp_path: Path, sqlite_engine: Engine) -> None:
    from sqlalchemy import insert

    from headend.db.tables import gateway_state

    _enrol(tmp_path, sqlite_engine)
    with sqlite_engine.begin() as conn:  # a gateway heard from, never enrolled with a key
        conn.execute(
            insert(gateway_state).values(
                gateway="gw-old", online=True, since=NOW, last_seen=NOW, health="{}"
            )
        )
    config = tmp_path / "headend.toml"
    config.write_text(f'[database]\nurl = "{sqlite_engine.url.render_as_string()}"\n')
    r = CliRunner().invoke(cli.app, ["gateway-keys", "-c", str(config)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("gw-0007  ") and "registered 2026-11-24 06:00Z" in lines[0]
    assert lines[1].startswith("gw-old  NO KEY")
    assert lines[2] == "1 gateway(s) with a key, 1 without"
    # revoked (revoke-gateway): refused whatever require_signatures says, and listed so
    r = CliRunner().invoke(
        cli.app,
        ["revoke-gateway", "gw-0007", "-c", str(config), "--broker-dir", str(tmp_path / "b")],
    )
    assert r.exit_code == 0 and "1 signing key(s) revoked" in r.output, r.output
    r = CliRunner().invoke(cli.app, ["gateway-keys", "-c", str(config)])
    assert r.output.splitlines()[0] == "gw-0007  REVOKED  (everything on its topics is refused)"


def test_rekey_replaces_only_the_signing_key(tmp_path: Path, sqlite_engine: Engine) -> None:
    first = _enrol(tmp_path, sqlite_engine)
    password = BrokerFiles(tmp_path / "b").passwd.entries()["gw-0007"]
    config = tmp_path / "headend.toml"
    config.write_text(f'[database]\nurl = "{sqlite_engine.url.render_as_string()}"\n')
    r = CliRunner().invoke(
        cli.app,
        ["rekey-gateway", "gw-0007", "-c", str(config), "--bundle-dir", str(tmp_path / "n")],
    )
    assert r.exit_code == 0, r.output
    pem = tmp_path / "n" / "gw-0007" / "gateway-key.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    private = load_pem_private_key(pem.read_bytes(), None)
    new_id = key_id(private.public_key())  # type: ignore[arg-type]
    assert new_id in r.output and new_id != first.key_id
    with sqlite_engine.connect() as conn:
        assert list(current(conn, "gw-0007")) == [new_id]  # the old key is refused from now on
    assert BrokerFiles(tmp_path / "b").passwd.entries()["gw-0007"] == password  # untouched
