"""The gateway's check of the head-end's Ed25519 command signatures (the executor's hook).

``SignatureVerifier(trust, store, clock)`` is a ``gateway.commands.SignatureCheck``: called with a
decoded ``Command`` it returns ``None`` to accept or a named reason to refuse, which the executor
reports as ``refused`` with reason ``signature: <reason>``.  Checks, in this order::

    unsigned           no signature (and signatures are required)
    unknown_key        key id not in the trust file
    key_retired        the key is past its cut-over date (gateway clock)
    bad_signature      the signature does not verify over Command.signing_bytes() (forged,
                       tampered with, malformed base64, wrong length)
    expired            valid_until has passed (gateway clock)
    not_yet_valid      issued more than ``clock_skew_s`` in the future
    validity_too_long  valid_until − issued exceeds ``max_validity_s`` (bounds the nonce memory)
    replayed           this nonce was accepted before
    nonce_memory_full  more than ``max_nonces`` unexpired nonces are remembered (flood)

Accepted nonces are persisted in the store (``set_state("signature.nonces", {nonce: valid_until})``)
and forgotten once their command has expired, when a replay would be refused as ``expired``
anyway.  The command log's duplicate-id check stays in front as a second line.

The trust file (written by ``taiqu headend keys export``/``enrol-gateway``) is JSON::

    {"format": "taiqu-trust-v1",
     "keys": [{"key_id": "he-20260302-1a2b3c4d", "public_key": "<base64 32 bytes>",
               "not_after": "2026-04-01T00:00:00Z" | null}]}

Errors: ``TrustFileError`` (a ``GatewayError``) when the trust file cannot be used.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.errors import GatewayError
from protocols.uplink.messages import Command
from taiqu.clock import Clock

if TYPE_CHECKING:  # ``cryptography`` is imported with the first trusted key (``parse_trust``)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger(__name__)

TRUST_FORMAT = "taiqu-trust-v1"
NONCE_KEY = "signature.nonces"


class TrustFileError(GatewayError):
    """The trust file cannot be used; ``str()`` names the file and the fix."""


class Refusal(StrEnum):
    """Why a command's signature was refused (the executor reports ``signature: <value>``)."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    KEY_RETIRED = "key_retired"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    VALIDITY_TOO_LONG = "validity_too_long"
    REPLAYED = "replayed"
    NONCE_MEMORY_FULL = "nonce_memory_full"


class SignatureConfig(BaseModel):
    """``[signatures]`` of gateway.toml: the head-end's public keys and the checks' limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trust_file: Path | None = None  # the head-end's public keys (taiqu-trust-v1 JSON)
    # The gateway's own Ed25519 key (PKCS#8 PEM, mode 0600, from enrol-gateway's bundle): every
    # up/data, up/status and up/result it publishes is signed with it (protocols.uplink.envelope).
    signing_key_file: Path | None = None
    # Unset: required when a trust file is configured.  ``true`` without a trust file is an error.
    required: bool | None = None
    max_validity_s: float = Field(default=7 * 86400.0, gt=0, le=90 * 86400.0)
    clock_skew_s: float = Field(default=300.0, ge=0, le=86400.0)
    max_nonces: int = Field(default=10_000, ge=10, le=1_000_000)

    @model_validator(mode="after")
    def _trust_for_required(self) -> SignatureConfig:
        if self.required and self.trust_file is None:
            raise ValueError(
                "required = true needs trust_file (the head-end's keys: taiqu headend keys export)"
            )
        return self

    @property
    def enforced(self) -> bool:
        """Whether unsigned commands are refused."""
        return self.trust_file is not None if self.required is None else self.required


@dataclass(frozen=True)
class TrustedKey:
    """A head-end public key the gateway accepts until ``not_after``."""

    key_id: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None


def parse_trust(doc: Any, where: str = "trust file") -> dict[str, TrustedKey]:
    """Trusted keys by key id from a parsed trust document."""
    if not isinstance(doc, dict) or doc.get("format") != TRUST_FORMAT:
        raise TrustFileError(f"{where}: not a {TRUST_FORMAT} document (re-export it)")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys: dict[str, TrustedKey] = {}
    for i, row in enumerate(doc.get("keys") or []):
        try:
            raw = base64.b64decode(row["public_key"], validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
            not_after = row.get("not_after")
            cut = datetime.fromisoformat(not_after.replace("Z", "+00:00")) if not_after else None
            if cut is not None and cut.tzinfo is None:
                raise ValueError("not_after has no UTC offset")
            keys[str(row["key_id"])] = TrustedKey(str(row["key_id"]), public, cut)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise TrustFileError(f"{where}: keys[{i}] is not usable ({exc})") from None
    if not keys:
        raise TrustFileError(f"{where}: lists no keys: export the head-end's keys again")
    return keys


def load_trust(path: Path) -> dict[str, TrustedKey]:
    """Read a trust file."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise TrustFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrustFileError(f"{path}: not JSON ({exc})") from None
    return parse_trust(doc, str(path))


class StateStore(Protocol):
    """The gateway store's small key-value state (``gateway.store.Store`` has it)."""

    def get_state(self, key: str, default: Any = None) -> Any: ...

    def set_state(self, key: str, value: Any) -> None: ...


class SignatureVerifier:
    """The executor's ``verify_signature`` hook (see the module docstring)."""

    def __init__(
        self,
        trust: dict[str, TrustedKey] | Callable[[], dict[str, TrustedKey]],
        store: StateStore,
        clock: Clock,
        *,
        required: bool = True,
        max_validity_s: float = 7 * 86400.0,
        clock_skew_s: float = 300.0,
        max_nonces: int = 10_000,
    ) -> None:
        self._trust = trust
        self.store = store
        self.clock = clock
        self.required = required
        self.max_validity = timedelta(seconds=max_validity_s)
        self.skew = timedelta(seconds=clock_skew_s)
        self.max_nonces = max_nonces
        self.refusals: dict[str, int] = {}

    @property
    def trust(self) -> dict[str, TrustedKey]:
        """The trusted keys (re-read through the callable when one was given)."""
        return self._trust() if callable(self._trust) else self._trust

    def __call__(self, command: Command) -> str | None:
        reason = self.check(command)
        if reason is not None:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1
            log.warning("command %s refused: signature %s", command.id, reason)
        return None if reason is None else reason.value

    def check(self, command: Command) -> Refusal | None:
        """The first reason to refuse ``command``, or None (its nonce is then remembered)."""
        signature = command.signature
        if signature is None:
            return Refusal.UNSIGNED if self.required else None
        key = self.trust.get(signature.key_id)
        if key is None:
            return Refusal.UNKNOWN_KEY
        now = self.clock.now()
        if key.not_after is not None and now >= key.not_after:
            return Refusal.KEY_RETIRED
        from cryptography.exceptions import InvalidSignature  # loaded with the key already

        try:
            value = base64.b64decode(signature.value, validate=True)
            key.public_key.verify(value, command.signing_bytes())
        except (binascii.Error, ValueError, InvalidSignature):
            return Refusal.BAD_SIGNATURE
        if now >= command.valid_until:
            return Refusal.EXPIRED
        if command.issued > now + self.skew:
            return Refusal.NOT_YET_VALID
        if command.valid_until - command.issued > self.max_validity:
            return Refusal.VALIDITY_TOO_LONG
        return self._remember(command, now)

    def _remember(self, command: Command, now: datetime) -> Refusal | None:
        nonces = self._nonces(now)
        if command.nonce in nonces:
            return Refusal.REPLAYED
        if len(nonces) >= self.max_nonces:
            return Refusal.NONCE_MEMORY_FULL
        nonces[command.nonce] = command.valid_until.isoformat()
        self.store.set_state(NONCE_KEY, nonces)
        return None

    def _nonces(self, now: datetime) -> dict[str, str]:
        """Remembered nonces whose command has not expired."""
        stored = self.store.get_state(NONCE_KEY, {})
        if not isinstance(stored, dict):
            return {}
        live: dict[str, str] = {}
        for nonce, until in stored.items():
            try:
                if datetime.fromisoformat(str(until)) > now:
                    live[str(nonce)] = str(until)
            except ValueError:
                continue
        return live


def build_verifier(
    cfg: SignatureConfig, store: StateStore, clock: Clock
) -> Callable[[Command], str | None]:
    """The hook for ``CommandExecutor(verify_signature=…)`` from ``[signatures]``.

    With no trust file and signatures not required, unsigned commands are accepted (logged once);
    signed ones are then refused as ``unknown_key``, since nothing can check them.
    """
    trust: dict[str, TrustedKey] = {}
    if cfg.trust_file is not None:
        trust = load_trust(cfg.trust_file)
    if not cfg.enforced:
        log.warning("signatures.required is off: commands are accepted unsigned")
    return SignatureVerifier(
        trust,
        store,
        clock,
        required=cfg.enforced,
        max_validity_s=cfg.max_validity_s,
        clock_skew_s=cfg.clock_skew_s,
        max_nonces=cfg.max_nonces,
    )


def command_check(
    settings: SignatureConfig,
    store: Any,
    clock: Clock,
    on_verified: Callable[[datetime], object] = lambda issued: None,
) -> Callable[[Command], str | None]:
    """``[signatures]`` as the executor's check (``TrustFileError`` if the trust file is unusable).

    ``on_verified(issued)`` hears the time of each command whose signature verified: with
    ``[clock_trust] source = "headend"`` that time counts as head-end time only then, since
    anyone on the broker can publish a command.
    """
    verify = build_verifier(settings, store, clock)

    def check(command: Command) -> str | None:
        reason = verify(command)
        if reason is None and command.signature is not None:
            on_verified(command.issued)
        return reason

    return check
