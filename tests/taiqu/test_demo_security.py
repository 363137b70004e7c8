"""The demo's broker as deployed: the shipped mosquitto config moved, enrolment bundles installed
into a gateway.toml that the gateway then loads (issues 19 and 23)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config.secrets import resolve_secrets
from headend.security.enrol import INSTALL_DIR, enrol_gateway
from headend.security.keys import KeyStore
from taiqu.demo.client import DemoError
from taiqu.demo.security import install_bundle, mosquitto_conf, shipped_dir

SIMULATED = """\
# Written by `taiqu sim serve` for area 'area1': connect a gateway in one step.
gateway_id = "gw-0001"
zone = "Asia/Shanghai"
data_dir = "./.run/gw-0001"

[broker]
host = "127.0.0.1"
port = 1883
keepalive = 60

[schedule]
energy_minutes = 15

# A bench with simulated meters accepts unsigned commands.  In the field, install the
# head-end's keys (`taiqu headend enrol-gateway`), set trust_file and required = true.
[signatures]
required = false

[[buses]]
name = "area1-rs485-1"
port = "socket://127.0.0.1:4000"
baud = 2400

[[meters]]
id = "202601000001"
bus = "area1-rs485-1"
protocol = "dlt645-2007"
address = "202601000001"
"""


def test_the_shipped_config_keeps_everything_but_paths_and_listener(tmp_path: Path) -> None:
    shipped = (shipped_dir() / "taiqu.conf").read_text()
    ours = mosquitto_conf(shipped, tmp_path / "etc", tmp_path / "data", 18883)
    settings = "\n".join(line for line in ours.splitlines() if not line.startswith("#"))
    assert "/etc/mosquitto" not in settings and "/var/lib/mosquitto" not in settings
    assert f"password_file {tmp_path}/etc/passwd" in ours.splitlines()
    assert f"acl_file {tmp_path}/etc/acl" in ours.splitlines()
    assert "listener 18883 127.0.0.1" in ours.splitlines()
    assert "listener 8883" not in ours.splitlines()
    for line in (
        "allow_anonymous false",
        "use_username_as_clientid true",
        "require_certificate false",
    ):
        assert line in ours.splitlines()
    with pytest.raises(DemoError, match="listener 8883"):  # the shipped file changed: say so
        mosquitto_conf(shipped.replace("listener 8883", "listener 1883"), tmp_path, tmp_path, 1)


def _bundle(tmp_path: Path) -> Path:
    keys = KeyStore(tmp_path / "keys")
    now = datetime(2026, 3, 10, tzinfo=UTC)
    keys.create(now)
    done = enrol_gateway(
        "gw-0001",
        broker_dir=tmp_path / "broker",
        out_dir=tmp_path / "enrol",
        now=now,
        keys=keys,
        host="127.0.0.1",
        port=18883,
    )
    return done.bundle


def test_an_installed_bundle_gives_the_gateway_its_identity_and_trust(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text(SIMULATED)
    install_bundle(config, bundle)
    cfg = load_config(config)  # the gateway accepts it
    assert cfg.broker.username == "gw-0001" and cfg.broker.port == 18883
    assert cfg.broker.password_file == bundle / "broker-password"
    secrets = resolve_secrets(cfg, config)
    assert secrets.password == (bundle / "broker-password").read_text().strip()
    assert cfg.signatures.required and cfg.signatures.trust_file == bundle / "headend-keys.json"
    assert cfg.broker.keepalive == 60 and len(cfg.meters) == 1  # the rest is kept
    text = config.read_text()
    assert "accepts unsigned commands" not in text  # the comment that no longer holds is gone
    assert INSTALL_DIR not in text


def test_every_key_of_the_snippet_is_installed_even_new_ones(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "uplink-signing.key").write_bytes(b"secret")
    snippet = bundle / "gateway-security.toml"
    snippet.write_text(
        snippet.read_text()
        + f'\n[uplink]\nsigning_key_file = "{INSTALL_DIR}/uplink-signing.key"\nalgorithm = "ed25519"\n'
    )
    config = tmp_path / "gateway.toml"
    config.write_text(SIMULATED)
    install_bundle(config, bundle)
    got = tomllib.loads(config.read_text())
    assert got["uplink"] == {
        "signing_key_file": str(bundle / "uplink-signing.key"),
        "algorithm": "ed25519",
    }
    assert got["broker"]["username"] == "gw-0001" and len(got["buses"]) == 1


def test_the_anonymous_fallback_keeps_the_broker_table(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text(SIMULATED)
    install_bundle(config, bundle, broker=False)
    got = tomllib.loads(config.read_text())
    assert got["broker"] == {"host": "127.0.0.1", "port": 1883, "keepalive": 60}
    assert got["signatures"]["required"] is True
