"""Secrets and key files ``gateway.toml`` names: broker credentials, trust file, meter secrets.

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
