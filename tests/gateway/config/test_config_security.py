"""gateway.toml's security keys: the signatures default, the trust file and the meter secrets file."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.commands.secrets import MeterCredentials
from gateway.config import ConfigError, parse_config
from gateway.config.secrets import meter_secrets, resolve_secrets
from protocols.dlt645.messages import DEFAULT_OPERATOR, DEFAULT_PASSWORD

ACCELERATED = {"start": "2026-11-24T00:00:00+08:00", "factor": 60}


def doc(**over: Any) -> dict[str, Any]:
    return {
        "gateway_id": "gw-1",
        "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001"}],
        "meters": [{"bus": "bus1", "protocol": "dlt645-2007", "address": "202611240001"}],
    } | over


def problems_of(d: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(d, Path("gw.toml"))
    return info.value.problems


def trust_file(path: Path) -> Path:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = {"key_id": "he-1", "public_key": base64.b64encode(public).decode(), "not_after": None}
    path.write_text(json.dumps({"format": "taiqu-trust-v1", "keys": [key]}))
    return path


def secrets_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


# -- signatures ----------------------------------------------------------------------------------


def test_a_real_clock_without_a_trust_file_is_refused_with_the_fix() -> None:
    [problem] = problems_of(doc())
    assert problem.startswith("gw.toml: signatures.trust_file: ")
    assert "taiqu headend enrol-gateway" in problem and "required = false" in problem


def test_a_trust_file_makes_signatures_required() -> None:
    cfg = parse_config(doc(signatures={"trust_file": "/k.json"}), Path("gw.toml"))
    assert cfg.signatures_required


def test_a_simulation_or_an_explicit_opt_out_does_not_require_signatures() -> None:
    fast = parse_config(doc(clock=ACCELERATED), Path("gw.toml"))
    bench = parse_config(doc(signatures={"required": False}), Path("gw.toml"))
    assert not fast.signatures_required and not bench.signatures_required
    strict = parse_config(
        doc(clock=ACCELERATED, signatures={"trust_file": "/k.json"}), Path("gw.toml")
    )
    assert strict.signatures_required  # a trust file means signatures, whatever the clock


def test_required_without_a_trust_file_names_the_key() -> None:
    found = problems_of(doc(clock=ACCELERATED, signatures={"required": True}))
    assert any(p.startswith("gw.toml: signatures: ") and "trust_file" in p for p in found), found


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        ("{", "not JSON"),
        ('{"format": "other"}', "not a taiqu-trust-v1 document"),
        ('{"format": "taiqu-trust-v1", "keys": []}', "lists no keys"),
    ],
)
def test_an_unusable_trust_file_is_a_config_error(
    tmp_path: Path, content: str | None, says: str
) -> None:
    path = tmp_path / "headend-keys.json"
    if content is not None:
        path.write_text(content)
    cfg = parse_config(doc(signatures={"trust_file": str(path)}), Path("gw.toml"))
    with pytest.raises(ConfigError) as info:
        resolve_secrets(cfg, "gw.toml")
    [problem] = info.value.problems
    assert problem.startswith(f"gw.toml: signatures.trust_file: {path}") and says in problem


def test_a_good_trust_file_resolves(tmp_path: Path) -> None:
    path = trust_file(tmp_path / "headend-keys.json")
    cfg = parse_config(doc(signatures={"trust_file": str(path)}), Path("gw.toml"))
    assert resolve_secrets(cfg, "gw.toml").username == "gw-1"


# -- meter secrets -------------------------------------------------------------------------------

SECRETS = """
[default]
password = "02123456"
operator = "0000a001"

[meters."202611240001"]
password = "04654321"

[meters."bus2:7"]
operator = "12345678"
"""


def cfg_with(path: Path) -> Any:
    return parse_config(
        doc(signatures={"required": False}, commands={"meter_secrets_file": str(path)}),
        Path("gw.toml"),
    )


def test_meter_secrets_per_meter_with_the_default_for_the_rest(tmp_path: Path) -> None:
    path = secrets_file(tmp_path / "meter-secrets.toml", SECRETS)
    secrets = meter_secrets(cfg_with(path), "gw.toml")
    assert secrets("202611240001") == MeterCredentials("04654321", "0000A001")
    assert secrets("bus2:7") == MeterCredentials("02123456", "12345678")
    assert secrets("202611249999") == MeterCredentials("02123456", "0000A001")
    shown = repr(secrets) + repr(secrets("202611240001"))
    assert "123456" not in shown and "654321" not in shown and "A001" not in shown


def test_without_a_secrets_file_every_meter_gets_the_factory_values() -> None:
    cfg = parse_config(doc(signatures={"required": False}), Path("gw.toml"))
    assert meter_secrets(cfg)("202611240001") == MeterCredentials(
        DEFAULT_PASSWORD, DEFAULT_OPERATOR
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = secrets_file(tmp_path / "meter-secrets.toml", SECRETS, mode)
    with pytest.raises(ConfigError) as info:
        resolve_secrets(cfg_with(path), "gw.toml")
    [problem] = info.value.problems
    assert problem.startswith(f"gw.toml: commands.meter_secrets_file: {path}: readable by others")
    assert f"mode {mode:04o}" in problem and f"chmod 600 {path}" in problem


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ('[default]\npassword = "7654321"\n', "default.password", "level 00-09 then 6 digits"),
        ('[default]\npassword = "17654321"\n', "default.password", "level 00-09 then 6 digits"),
        ('[meters."m1"]\noperator = "xyz12345"\n', 'meters."m1".operator', "8 hex digits"),
        ('[default]\npasswd = "02123456"\n', "default.passwd", "not a known key"),
        ("password = 1\n", "password", "not a known key"),
    ],
)
def test_bad_secrets_name_the_key_and_never_echo_the_value(
    tmp_path: Path, text: str, key: str, fix: str
) -> None:
    path = secrets_file(tmp_path / "meter-secrets.toml", text)
    with pytest.raises(ConfigError) as info:
        meter_secrets(cfg_with(path), "gw.toml")
    [problem] = info.value.problems
    assert f"{path}: {key} " in problem and fix in problem, problem
    assert "7654321" not in problem and "xyz" not in problem


@pytest.mark.parametrize(
    ("content", "says"), [(None, "cannot read"), (b"[default\n", "not valid TOML")]
)
def test_a_missing_or_broken_secrets_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "meter-secrets.toml"
    if content is not None:
        path.write_bytes(content)
        os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        resolve_secrets(cfg_with(path), "gw.toml")
    assert says in info.value.problems[0]


# -- the uplink signing key ----------------------------------------------------------------------


def test_the_uplink_signing_key_is_checked_at_start(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    from gateway.config.secrets import uplink_sealer
    from protocols.uplink.envelope import key_id

    def pem(key: Any) -> bytes:
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    private = Ed25519PrivateKey.generate()
    good = secrets_file(tmp_path / "k.pem", pem(private).decode())
    cases = {
        tmp_path / "none.pem": "cannot read",
        secrets_file(tmp_path / "open.pem", pem(private).decode(), 0o644): "chmod 600",
        secrets_file(tmp_path / "junk.pem", "not a key"): "not a PEM private key",
        secrets_file(tmp_path / "ec.pem", pem(generate_private_key(SECP256R1())).decode()): (
            "not an Ed25519 key"
        ),
    }
    base = {"required": False}
    for path, why in cases.items():
        cfg = parse_config(doc(signatures={**base, "signing_key_file": str(path)}), Path("gw.toml"))
        with pytest.raises(ConfigError) as info:
            resolve_secrets(cfg, "gw.toml")
        [problem] = info.value.problems
        assert problem.startswith("gw.toml: signatures.signing_key_file: ") and why in problem
    cfg = parse_config(doc(signatures={**base, "signing_key_file": str(good)}), Path("gw.toml"))
    sealer = uplink_sealer(cfg, "gw.toml")
    assert sealer is not None and sealer.key_id == key_id(private.public_key())
    assert uplink_sealer(parse_config(doc(signatures=base), Path("gw.toml"))) is None
