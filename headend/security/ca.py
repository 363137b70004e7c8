"""A small local certificate authority for the broker's TLS listener and gateway client certs.

Files in the CA directory (0700): ``ca.crt`` (public, installed on gateways and the head-end),
``ca.key`` (0600, never leaves the head-end host).  Certificates are ECDSA P-256, SHA-256,
with the gateway id as the common name (mosquitto's ``use_identity_as_username`` makes it the
broker username, so the same ACL patterns apply as with passwords).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from headend.security.errors import KeyStoreError
from headend.security.keys import check_private, write_private


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate (0644) and the key (0600)."""
        write_private(cert_path, self.cert_pem)
        cert_path.chmod(0o644)
        write_private(key_path, self.key_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Taiqu"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LocalCA:
    """Create the CA once, then issue server and client certificates from it."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    def exists(self) -> bool:
        return self.cert_path.exists() and self.key_path.exists()

    def create(self, now: datetime, *, name: str = "Taiqu broker CA", years: int = 10) -> None:
        """Make the CA key and self-signed certificate (refused when one exists)."""
        if self.exists():
            raise KeyStoreError(f"{self.directory} already holds a CA")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_private(self.key_path, _key_pem(key))
        write_private(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self.cert_path.chmod(0o644)

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        check_private(self.key_path)
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self.directory}: not a usable CA ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"{self.key_path}: not an EC key")
        return cert, key

    def _issue(
        self,
        common_name: str,
        now: datetime,
        days: int,
        usage: x509.ObjectIdentifier,
        names: list[x509.GeneralName],
    ) -> Issued:
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(self, hosts: list[str], now: datetime, *, days: int = 825) -> Issued:
        """The broker's certificate for ``hosts`` (DNS names or IP addresses)."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(hosts[0], now, days, ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_client(self, identity: str, now: datetime, *, days: int = 3650) -> Issued:
        """A client certificate whose common name is ``identity`` (the gateway id)."""
        return self._issue(identity, now, days, ExtendedKeyUsageOID.CLIENT_AUTH, [])
