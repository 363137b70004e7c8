"""Settings of the MQTT uplink: the broker (also ``[broker]`` of gateway.toml) and the drain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

PASSWORD_ENV = "TAIQU_BROKER_PASSWORD"


class BrokerSettings(BaseModel):
    """``[broker]`` of gateway.toml: where the uplink connects and how it authenticates.

    The one broker model: the configuration loads it from the TOML (which names a
    ``password_file`` or leaves the password to ``$TAIQU_BROKER_PASSWORD``), the daemon resolves
    the secrets into ``password`` (``gateway.config.secrets``), tests and tools build it directly.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    keepalive: int = Field(default=60, ge=5, le=3600)  # each ping costs ~80 B of TCP/IP on 4G
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None  # defaults to the gateway id
    password_file: Path | None = None  # mode 0600; else $TAIQU_BROKER_PASSWORD
    password: SecretStr | None = None  # resolved at start; never written in gateway.toml

    @model_validator(mode="after")
    def _client_pair(self) -> BrokerSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None


class UplinkSettings(BaseModel):
    """Batching, flow control and timing of the store-and-forward drain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_records: int = Field(default=500, ge=1, le=100_000)  # records per batch at most
    batch_bytes: int = Field(default=256 * 1024, ge=1024)  # uncompressed JSON per batch at most
    window: int = Field(default=4, ge=1, le=64)  # batches awaiting the head-end's Ack at most
    ack_timeout: float = Field(default=30.0, gt=0)  # seconds before unacknowledged data is re-sent
    ack_timeout_max: float = Field(default=600.0, gt=0)  # back-off cap while nothing is acked
    resend_max_records: int = Field(default=20_000, ge=1)  # one ResendRequest serves at most this
    resend_queue: int = Field(default=32, ge=1)  # pending ResendRequests kept (older dropped)
    max_outstanding: int = Field(default=16, ge=1)  # publishes awaiting the broker's PUBACK
    poll_interval: float = Field(default=5.0, gt=0)  # look at the store this often when idle
    reconnect_min: float = Field(default=1.0, gt=0)
    reconnect_max: float = Field(default=60.0, gt=0)
    stop_timeout: float = Field(default=5.0, gt=0)


def broker_password(broker: Any) -> str | None:
    """The broker password: ``password`` (str or secret), else ``password_file``, else the env."""
    password = getattr(broker, "password", None)
    if isinstance(password, SecretStr):
        return password.get_secret_value()
    if isinstance(password, str):
        return password
    password_file = getattr(broker, "password_file", None)
    if password_file:
        return Path(password_file).read_text().strip()
    return os.environ.get(PASSWORD_ENV)
