"""``[security]`` of headend.toml: where the signing keys, the broker's files and the CA live.

::

    [security]
    keys_dir = "/var/lib/taiqu-headend/keys"        # command-signing keys (0700)
    broker_dir = "/etc/mosquitto/taiqu"             # passwd + acl that mosquitto reads
    ca_dir = "/var/lib/taiqu-headend/ca"            # the local CA (optional)
    bundle_dir = "/var/lib/taiqu-headend/enrol"     # gateway bundles waiting to be installed
    broker_host = "mqtt.utility.example"            # written into the bundles
    broker_port = 8883
    sign_commands = true                            # false only while no gateway checks them
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headend.commands.signing import Ed25519Signer, NoSigner, Signer
from headend.security.errors import KeyStoreError
from headend.security.keys import KeyStore

log = logging.getLogger(__name__)


class SecuritySettings(BaseModel):
    """The ``[security]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys_dir: Path = Path("/var/lib/taiqu-headend/keys")
    broker_dir: Path = Path("/etc/mosquitto/taiqu")
    ca_dir: Path = Path("/var/lib/taiqu-headend/ca")
    bundle_dir: Path = Path("/var/lib/taiqu-headend/enrol")
    broker_host: str = "broker.example.net"
    broker_port: int = Field(default=8883, ge=1, le=65535)
    sign_commands: bool = True

    @classmethod
    def from_extra(cls, extra: dict[str, Any], source: object = "headend.toml") -> SecuritySettings:
        """Read ``[security]`` from ``Settings.extra`` (``KeyStoreError`` naming key and fix)."""
        try:
            return cls.model_validate(extra.get("security", {}))
        except ValidationError as exc:
            lines = [
                f"{source}: security.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            ]
            raise KeyStoreError("\n".join(lines)) from None


def make_signer(settings: SecuritySettings) -> Signer:
    """The dispatcher's signer: Ed25519 from ``keys_dir`` (refuses to start without keys)."""
    if not settings.sign_commands:
        log.warning("security.sign_commands is false: commands are sent unsigned")
        return NoSigner()
    store = KeyStore(settings.keys_dir)
    if not store.entries():
        raise KeyStoreError(
            f"security.keys_dir: {settings.keys_dir} holds no signing key: "
            "run taiqu headend keys-init (or set security.sign_commands = false)"
        )
    return Ed25519Signer(store)
