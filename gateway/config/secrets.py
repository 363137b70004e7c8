"""Secrets and key files ``gateway.toml`` names: broker credentials, trust file, uplink signing
key, meter secrets.

Read at start (and checked before anything connects), each failure a ``ConfigError`` naming the
key and the fix.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.checks import check_signatures
from gateway.config.load import ConfigError
from gateway.config.models import GatewayConfig
from gateway.uplink.settings import PASSWORD_ENV

if TYPE_CHECKING:
    from gateway.commands.secrets import MeterSecrets
    from protocols.uplink.envelope import Sealer


@dataclass(frozen=True)
class Secrets:
    """The broker credentials, resolved from the environment or the password file."""

    username: str
    password: str | None


def resolve_secrets(cfg: GatewayConfig, path: str | Path = "gateway.toml") -> Secrets:
    """The broker credentials (password from ``$TAIQU_BROKER_PASSWORD`` or ``password_file``),
    after checking every other secret and key file the config names: the trust file and the meter
    secrets file (``ConfigError`` naming the key and the fix)."""
    broker = cfg.broker
    username = broker.username or cfg.gateway_id
    password = os.environ.get(PASSWORD_ENV)
    if password is None and broker.password_file is not None:
        pf = broker.password_file
        try:
            mode = pf.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    [
                        f"{path}: broker.password_file: {pf} is readable by others "
                        f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {pf}"
                    ]
                )
            password = pf.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                [f"{path}: broker.password_file: cannot read {pf} ({exc.strerror or exc})"]
            ) from None
    for key in ("ca_file", "cert_file", "key_file"):
        file = getattr(broker, key)
        if file is not None and not Path(file).is_file():
            raise ConfigError(
                [f"{path}: broker.{key}: {file} does not exist: fix the path or remove the key"]
            )
    check_trust(cfg, path)
    uplink_sealer(cfg, path)
    meter_secrets(cfg, path)
    return Secrets(username=username, password=password)


def check_trust(cfg: GatewayConfig, path: str | Path = "gateway.toml") -> None:
    """``ConfigError`` unless signatures can be checked as configured (the trust file loads)."""
    from gateway.signature import TrustFileError, load_trust

    problems = check_signatures(cfg, where=str(path))
    if problems:
        raise ConfigError(problems)
    trust_file = cfg.signatures.trust_file
    if trust_file is not None:
        try:
            load_trust(trust_file)
        except TrustFileError as exc:
            raise ConfigError([f"{path}: signatures.trust_file: {exc}"]) from None


def uplink_sealer(cfg: GatewayConfig, path: str | Path = "gateway.toml") -> Sealer | None:
    """The uplink signer from ``[signatures] signing_key_file`` (None when unset; ``ConfigError``
    when the file is missing, readable by others, or not an Ed25519 private key)."""
    file = cfg.signatures.signing_key_file
    if file is None:
        return None  # before the imports: a gateway that does not sign never loads cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from protocols.uplink.envelope import Sealer

    where = f"{path}: signatures.signing_key_file"
    try:
        mode = Path(file).stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            why = f"is readable by others (mode {stat.S_IMODE(mode):04o}): chmod 600 {file}"
            raise ConfigError([f"{where}: {file} {why}"])
        key = load_pem_private_key(Path(file).read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read {file} ({exc.strerror or exc})"]) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"{where}: {file} is not a PEM private key ({exc})"]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([f"{where}: {file} is not an Ed25519 key: install gateway-key.pem"])
    return Sealer(key)


def meter_secrets(cfg: GatewayConfig, path: str | Path = "gateway.toml") -> MeterSecrets:
    """The meter passwords and operator codes (``[commands] meter_secrets_file``)."""
    from gateway.commands.secrets import MeterSecrets, MeterSecretsError, load_meter_secrets

    file = cfg.commands.meter_secrets_file
    if file is None:
        return MeterSecrets()
    try:
        return load_meter_secrets(Path(file))
    except MeterSecretsError as exc:
        raise ConfigError([f"{path}: commands.meter_secrets_file: {exc}"]) from None
