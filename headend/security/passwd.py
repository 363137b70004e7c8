"""The mosquitto 2 password file, written without ``mosquitto_passwd``.

One line per user: ``username:$7$<iterations>$<base64 12-byte salt>$<base64 PBKDF2-SHA512>``
(the format mosquitto 2 reads; ``$6$`` salted SHA-512 lines of older files are kept as they
are).  Writes take an exclusive lock, replace the file atomically and keep its mode and owner,
so the broker (reloaded with SIGHUP) never sees half a file.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headend.security.errors import EnrolmentError
from headend.security.keys import write_private

ITERATIONS = 101  # mosquitto_passwd's default; the passwords are 256-bit random tokens


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$`` hash of ``password``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), parts[4]
    except ValueError:
        return False
    expected = hash_password(password, iterations=iterations, salt=salt).split("$")[4]
    return hmac.compare_digest(expected, digest)


def replace_keeping_owner(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace ``path``, keeping an existing file's mode and owner (else ``mode``)."""
    old = path.stat() if path.exists() else None
    write_private(path, data)
    os.chmod(path, (old.st_mode & 0o777) if old is not None else mode)
    if old is not None and os.geteuid() == 0:
        os.chown(path, old.st_uid, old.st_gid)


def new_password() -> str:
    """A random broker password (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class PasswordFile:
    """Add, replace and remove users of a mosquitto password file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def entries(self) -> dict[str, str]:
        """username → hash."""
        if not self.path.exists():
            return {}
        out: dict[str, str] = {}
        for line in self.path.read_text().splitlines():
            if line.strip() and not line.startswith("#") and ":" in line:
                user, hashed = line.split(":", 1)
                out[user] = hashed
        return out

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            entries = self.entries()
            yield entries
            self._write(entries)

    def _write(self, entries: dict[str, str]) -> None:
        text = "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())
        replace_keeping_owner(self.path, text.encode(), 0o600)

    def set(self, user: str, password: str, *, replace: bool = False) -> None:
        """Add ``user`` (or replace its password when ``replace``)."""
        if ":" in user or "\n" in user:
            raise EnrolmentError(f"{user!r} cannot be a broker username")
        with self._locked() as entries:
            if user in entries and not replace:
                raise EnrolmentError(
                    f"{user} already has broker credentials in {self.path}: "
                    "use --replace to issue new ones (the old password stops working)"
                )
            entries[user] = hash_password(password)

    def remove(self, user: str) -> bool:
        """Remove ``user``; whether it was there."""
        with self._locked() as entries:
            return entries.pop(user, None) is not None
