"""Enrolling gateways (and head-end identities) with the broker, and the bundle a gateway installs.

Head-end identities (``enrol_headend``) each get a ``user`` block in the ACL reading
``taiqu/v1/+/up/#`` (directly or through ``$share/<group>/…``) and writing ``taiqu/v1/+/down/#``;
one identity per ingest process (``headend_names``: ``taiqu-headend-1``, ``-2``, …), because the
broker makes a client's id its username.

``enrol_gateway`` creates a random broker password (hashed into the mosquitto password file),
makes sure the ACL holds the per-gateway patterns (``pattern write taiqu/v1/%u/up/#``,
``pattern read taiqu/v1/%u/down/#`` — one pair covers every gateway, whose username is its id),
optionally issues a client certificate from the local CA, generates the gateway's own Ed25519
uplink signing key (its public key registered with the head-end when ``engine`` is given:
``headend.security.gateway_keys``, which revokes any older key of the gateway), and writes the
gateway's bundle::

    <out>/<gateway id>/
      broker-password          0600  the broker password (install as broker.password_file)
      gateway-key.pem          0600  the uplink signing key (signatures.signing_key_file)
      ca.crt                         the broker's CA (broker.ca_file)
      client.crt, client.key   0600  with --client-cert (broker.cert_file / key_file)
      headend-keys.json              the head-end's public signing keys (signatures.trust_file)
      gateway-security.toml          the [broker] and [signatures] keys to paste into gateway.toml

The bundle directory is 0700: it holds a secret until it is installed and deleted.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from headend.security.ca import LocalCA
from headend.security.errors import EnrolmentError
from headend.security.keys import KeyStore, write_private
from headend.security.passwd import PasswordFile, new_password, replace_keeping_owner
from protocols.uplink.envelope import key_id as uplink_key_id
from protocols.uplink.envelope import raw_public
from protocols.uplink.topics import GATEWAY_ID, ROOT

GATEWAY_PATTERNS = (f"pattern write {ROOT}/%u/up/#", f"pattern read {ROOT}/%u/down/#")
HEADEND_TOPICS = (f"topic read {ROOT}/+/up/#", f"topic write {ROOT}/+/down/#")
DEFAULT_HEADEND = "taiqu-headend"
INSTALL_DIR = "/etc/taiqu-gateway/security"


@dataclass(frozen=True)
class BrokerFiles:
    """Where the broker's password file and ACL live (``/etc/mosquitto/taiqu`` in production)."""

    directory: Path

    @property
    def passwd(self) -> PasswordFile:
        return PasswordFile(self.directory / "passwd")

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    def acl_text(self) -> str:
        return self.acl.read_text() if self.acl.exists() else ""

    def headend_users(self) -> set[str]:
        """Users with their own ``user`` block in the ACL (head-end identities)."""
        return set(re.findall(r"^user\s+(\S+)\s*$", self.acl_text(), flags=re.M))

    def ensure_acl(self) -> None:
        """Add the gateway patterns to the ACL when they are missing (the file is kept 0640)."""
        text = self.acl_text()
        missing = [p for p in GATEWAY_PATTERNS if p not in text.splitlines()]
        if not missing:
            return
        header = "# Taiqu gateways: each publishes under its own up/ and reads its own down/.\n"
        body = header + "".join(f"{p}\n" for p in missing)
        # Patterns first: mosquitto reads them wherever they are, but people read top-down.
        self._write_acl(body + ("\n" + text if text else ""))

    def add_headend(self, name: str) -> None:
        """Add a ``user`` block for a head-end identity."""
        if name in self.headend_users():
            return
        block = f"\nuser {name}\n" + "".join(f"{t}\n" for t in HEADEND_TOPICS)
        self._write_acl(self.acl_text().rstrip("\n") + "\n" + block)

    def _write_acl(self, text: str) -> None:
        replace_keeping_owner(self.acl, text.encode(), 0o640)


@dataclass(frozen=True)
class Enrolment:
    """What ``enrol_gateway`` made."""

    gateway_id: str
    bundle: Path
    files: list[Path] = field(default_factory=list)
    password: str = field(default="", repr=False)
    key_id: str = ""  # the uplink signing key's id ("" when none was made)
    public_key: bytes = b""  # its raw Ed25519 public key (register it: gateway_keys.register)
    registered: bool = False  # whether it was registered with the head-end's database


def check_gateway_id(gateway_id: str, broker: BrokerFiles) -> None:
    """Refuse ids that are not MQTT-safe or that name a head-end identity."""
    if not GATEWAY_ID.match(gateway_id):
        raise EnrolmentError(
            f"{gateway_id!r} is not a gateway id: use 1-64 letters, digits, '_' or '-'"
        )
    if gateway_id in broker.headend_users() or gateway_id == DEFAULT_HEADEND:
        raise EnrolmentError(f"{gateway_id!r} is a head-end identity: choose another gateway id")


def _snippet(
    gateway_id: str,
    host: str,
    port: int,
    *,
    has_ca: bool,
    client_cert: bool,
    trust: bool,
    signing_key: bool = False,
) -> str:
    lines = [
        f"# Paste into gateway.toml (files from this bundle installed under {INSTALL_DIR}).",
        "[broker]",
        f'host = "{host}"',
        f"port = {port}",
        f'username = "{gateway_id}"',
        f'password_file = "{INSTALL_DIR}/broker-password"',
    ]
    if has_ca:
        lines.append(f'ca_file = "{INSTALL_DIR}/ca.crt"')
    if client_cert:
        lines += [
            f'cert_file = "{INSTALL_DIR}/client.crt"',
            f'key_file = "{INSTALL_DIR}/client.key"',
        ]
    if trust or signing_key:
        lines += ["", "[signatures]"]
    if trust:
        lines += [f'trust_file = "{INSTALL_DIR}/headend-keys.json"', "required = true"]
    if signing_key:
        lines.append(f'signing_key_file = "{INSTALL_DIR}/gateway-key.pem"')
    return "\n".join(lines) + "\n"


def enrol_gateway(
    gateway_id: str,
    *,
    broker_dir: Path,
    out_dir: Path,
    now: datetime,
    keys: KeyStore | None = None,
    ca: LocalCA | None = None,
    client_cert: bool = False,
    host: str = "broker.example.net",
    port: int = 8883,
    replace: bool = False,
    signing_key: bool = True,
    engine: Engine | None = None,
    registered_by: str = "enrol-gateway",
) -> Enrolment:
    """Create ``gateway_id``'s broker credentials and its installation bundle (see module doc).

    ``signing_key``: generate the gateway's uplink signing key; ``engine``: register its public key
    with the head-end's database first (a failure there leaves the broker and bundle untouched).
    """
    broker = BrokerFiles(Path(broker_dir))
    check_gateway_id(gateway_id, broker)
    if client_cert and (ca is None or not ca.exists()):
        raise EnrolmentError("--client-cert needs a local CA: taiqu headend security init-ca")
    bundle = Path(out_dir) / gateway_id
    if bundle.exists() and any(bundle.iterdir()) and not replace:
        raise EnrolmentError(f"{bundle} exists: install and delete it, or use --replace")
    if not replace and gateway_id in broker.passwd.entries():
        raise EnrolmentError(
            f"{gateway_id} already has broker credentials in {broker.passwd.path}: "
            "use --replace to issue new ones (the old password and signing key stop working)"
        )
    private = Ed25519PrivateKey.generate() if signing_key else None
    public = raw_public(private.public_key()) if private is not None else b""
    if private is not None and engine is not None:
        from headend.db.engine import writing
        from headend.security.gateway_keys import register

        with writing(engine) as conn:
            register(conn, gateway_id, public, now, registered_by)
    password = new_password()
    broker.passwd.set(gateway_id, password, replace=replace)
    broker.ensure_acl()
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle.chmod(0o700)
    files = [bundle / "broker-password"]
    write_private(files[0], password.encode() + b"\n")
    if private is not None:
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files.append(bundle / "gateway-key.pem")
        write_private(files[-1], pem)
    else:  # a re-enrolment without a key leaves no stale one behind
        (bundle / "gateway-key.pem").unlink(missing_ok=True)
    if ca is not None and ca.exists():
        shutil.copyfile(ca.cert_path, bundle / "ca.crt")
        files.append(bundle / "ca.crt")
        if client_cert:
            ca.issue_client(gateway_id, now).write(bundle / "client.crt", bundle / "client.key")
            files += [bundle / "client.crt", bundle / "client.key"]
    trust = keys is not None and bool(keys.entries())
    if keys is not None and trust:
        files.append(keys.export_trust(bundle / "headend-keys.json", now))
    snippet = bundle / "gateway-security.toml"
    has_ca = (bundle / "ca.crt").exists()
    snippet.write_text(
        _snippet(
            gateway_id,
            host,
            port,
            has_ca=has_ca,
            client_cert=client_cert,
            trust=trust,
            signing_key=private is not None,
        )
    )
    files.append(snippet)
    kid = uplink_key_id(public) if public else ""
    return Enrolment(gateway_id, bundle, files, password, kid, public, bool(public and engine))


def rekey_gateway(
    gateway_id: str, *, out_dir: Path, now: datetime, engine: Engine, registered_by: str = "rekey"
) -> Enrolment:
    """Issue ``gateway_id`` a new uplink signing key alone (its broker password stays): register
    it (revoking the old key at once) and write ``<out>/<gateway id>/gateway-key.pem`` (0600).

    For rolling signing out to gateways enrolled before it, and for replacing a key suspected
    stolen; the gateway refuses nothing meanwhile, the head-end refuses the old key from now on.
    """
    if not GATEWAY_ID.match(gateway_id):
        raise EnrolmentError(f"{gateway_id!r} is not a gateway id")
    from headend.db.engine import writing
    from headend.security.gateway_keys import register

    private = Ed25519PrivateKey.generate()
    public = raw_public(private.public_key())
    with writing(engine) as conn:
        register(conn, gateway_id, public, now, registered_by)
    bundle = Path(out_dir) / gateway_id
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle.chmod(0o700)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(bundle / "gateway-key.pem", pem)
    return Enrolment(
        gateway_id, bundle, [bundle / "gateway-key.pem"], "", uplink_key_id(public), public, True
    )


def headend_names(base: str, count: int | None) -> list[str]:
    """The identities ``enrol-headend`` makes: ``base`` alone, or ``base-1`` … ``base-count``.

    The broker makes a client's id its username (``use_username_as_clientid``), so every ingest
    process of a shared group needs an identity of its own.
    """
    if count is not None and not 1 <= count <= 64:
        raise EnrolmentError(f"--count {count}: enrol 1 to 64 head-end identities at a time")
    names = [base] if count is None else [f"{base}-{i}" for i in range(1, count + 1)]
    for name in names:
        if not GATEWAY_ID.match(name):
            raise EnrolmentError(f"{name!r}: use 1-64 letters, digits, '_' or '-'")
    return names


def enrol_headend(name: str, *, broker_dir: Path, replace: bool = False) -> str:
    """Create a head-end broker identity (its own ACL block); returns its password."""
    if not GATEWAY_ID.match(name):
        raise EnrolmentError(f"{name!r}: use 1-64 letters, digits, '_' or '-'")
    broker = BrokerFiles(Path(broker_dir))
    password = new_password()
    broker.passwd.set(name, password, replace=replace)
    broker.ensure_acl()
    broker.add_headend(name)
    return password


def revoke_gateway(gateway_id: str, *, broker_dir: Path) -> bool:
    """Remove a gateway's broker password (reload the broker; revoke its certificate too)."""
    return BrokerFiles(Path(broker_dir)).passwd.remove(gateway_id)
