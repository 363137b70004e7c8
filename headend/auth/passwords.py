"""argon2id password hashing (argon2-cffi), with a constant-cost path for unknown users."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from headend.db.errors import InvalidRequest

MIN_LENGTH = 10
MAX_LENGTH = 1024
_hasher = PasswordHasher()


def check_policy(password: str) -> None:
    """Raise ``InvalidRequest`` unless ``password`` is acceptable."""
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"passwords need at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"passwords are at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (checked against the policy first)."""
    check_policy(password)
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("taiqu-no-such-user-padding")


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; an unknown user (None) costs the same time."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def rehash(password: str) -> str:
    """A fresh hash of an already accepted password (no policy check: it was valid when set)."""
    return _hasher.hash(password)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)
