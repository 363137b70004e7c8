"""Bearer tokens: HS256 JWTs (pyjwt) carrying the user name and token version, with expiry.

Claims: ``sub`` (user name), ``ver`` (the user's token version: bumped on password change or
disable, which revokes every earlier token), ``iat``, ``exp``, ``iss``, ``jti``.  Role and area
scope are *not* in the token: they are read from the database on every request, so a change takes
effect at once.  Expiry runs on the wall clock, never on a simulated clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from headend.auth.errors import Unauthenticated

log = logging.getLogger(__name__)
ALGORITHM = "HS256"
MIN_SECRET = 32


@dataclass(frozen=True)
class Claims:
    """What a valid token says."""

    name: str
    version: int
    expires: datetime


class TokenService:
    """Issues and checks tokens with one secret."""

    def __init__(self, secret: str | None, minutes: int = 60, issuer: str = "taiqu-headend"):
        if secret is None:
            log.warning(
                "no token secret configured (TAIQU_HEADEND_SECRET or auth.secret_file): using a "
                "random one; tokens die with this process and other instances reject them"
            )
            secret = secrets.token_urlsafe(48)
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the token secret needs at least {MIN_SECRET} characters")
        self._secret = secret
        self.lifetime = timedelta(minutes=minutes)
        self.issuer = issuer

    def issue(
        self, name: str, version: int, *, now: datetime | None = None
    ) -> tuple[str, datetime]:
        """A token for ``name`` and when it expires."""
        now = now or datetime.now(UTC)
        expires = now + self.lifetime
        claims = {
            "sub": name,
            "ver": version,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "iss": self.issuer,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires

    def mac(self, purpose: str, data: str) -> str:
        """An HMAC-SHA256 of ``data`` under a key derived from the secret for ``purpose``."""
        key = hmac.new(self._secret.encode(), f"taiqu-{purpose}".encode(), hashlib.sha256)
        digest = hmac.new(key.digest(), data.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def check(self, token: str) -> Claims:
        """The token's claims; ``Unauthenticated`` saying why it is not acceptable."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iat", "iss", "ver"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired: log in again") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid ({exc})") from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["ver"], int):
            raise Unauthenticated("the token is not valid (bad claims)")
        return Claims(claims["sub"], claims["ver"], datetime.fromtimestamp(claims["exp"], UTC))
