"""``taiqu headend keys-* | init-ca | enrol-headend`` and the ``[security]`` settings."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from typer.testing import CliRunner

from gateway.signature import load_trust
from headend.commands.signing import Ed25519Signer, NoSigner
from headend.security import cli
from headend.security.errors import KeyStoreError
from headend.security.keys import KeyStore
from headend.security.settings import SecuritySettings, make_signer

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(cli.app, list(args))
    return result


def test_keys_init_rotate_export(tmp_path) -> None:
    keys = tmp_path / "keys"
    assert invoke("keys-init", "--keys-dir", str(keys)).exit_code == 0
    assert invoke("keys-init", "--keys-dir", str(keys)).exit_code == 2  # never overwrites
    r = invoke(
        "keys-rotate", "--keys-dir", str(keys), "--activate-in-days", "1", "--overlap-days", "2"
    )
    assert r.exit_code == 0, r.output
    trust = tmp_path / "trust.json"
    assert invoke("keys-export", str(trust), "--keys-dir", str(keys)).exit_code == 0
    doc = json.loads(trust.read_text())
    assert len(doc["keys"]) == 2 and doc["keys"][0]["not_after"] is not None
    assert "PRIVATE" not in trust.read_text()
    assert set(load_trust(trust)) == {k.key_id for k in KeyStore(keys).entries()}


def test_init_ca_issues_a_broker_certificate(tmp_path) -> None:
    r = invoke(
        "init-ca",
        "mqtt.example",
        "10.0.0.5",
        "--ca-dir",
        str(tmp_path / "ca"),
        "--broker-dir",
        str(tmp_path / "broker"),
    )
    assert r.exit_code == 0, r.output
    cert = x509.load_pem_x509_certificate((tmp_path / "broker" / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.example"]
    assert stat.S_IMODE((tmp_path / "broker" / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600


def test_enrol_headend_adds_its_acl_block_once(tmp_path) -> None:
    for _ in range(2):
        r = invoke(
            "enrol-headend",
            "ingest-2",
            "--broker-dir",
            str(tmp_path),
            "--password-file",
            str(tmp_path / "pw"),
            "--replace",
        )
        assert r.exit_code == 0, r.output
    acl = (tmp_path / "acl").read_text()
    assert acl.count("user ingest-2") == 1
    assert stat.S_IMODE((tmp_path / "pw").stat().st_mode) == 0o600


def test_bad_gateway_id_is_a_clean_error(tmp_path) -> None:
    r = invoke(
        "enrol-gateway",
        "gw/1",
        "--broker-dir",
        str(tmp_path),
        "--bundle-dir",
        str(tmp_path / "b"),
        "--keys-dir",
        str(tmp_path / "k"),
        "--ca-dir",
        str(tmp_path),
    )
    assert r.exit_code == 2 and "not a gateway id" in r.output and "Traceback" not in r.output


def test_security_settings_and_signer(tmp_path) -> None:
    settings = SecuritySettings.from_extra({"security": {"keys_dir": str(tmp_path / "k")}})
    with pytest.raises(KeyStoreError, match="keys-init"):
        make_signer(settings)
    KeyStore(settings.keys_dir).create(datetime.now(UTC) - timedelta(minutes=1))
    assert isinstance(make_signer(settings), Ed25519Signer)
    off = SecuritySettings.from_extra({"security": {"sign_commands": False}})
    assert isinstance(make_signer(off), NoSigner)
    with pytest.raises(KeyStoreError, match=r"security\.broker_port"):
        SecuritySettings.from_extra({"security": {"broker_port": 0}})
